"""Circuit breakers, per-stage timeouts and the database-outage reply (SPEC §5 core).

A :class:`CircuitBreaker` guards one dependency (the served model's ranking, the search
query encoder). While it is *closed* calls pass; ``failure_threshold`` consecutive failures
(an exception or a stage timeout) *open* it, and for ``reset_timeout_s`` every call is
refused at once so the caller serves its fallback without waiting on a broken dependency.
Then it is *half-open*: up to ``half_open_max_calls`` trial calls pass; ``success_threshold``
successes close it again, one failure re-opens it. SPEC defaults: 5 failures, 3 successes,
30 s open, 3 half-open calls.

The checks on the hot path are a couple of attribute reads (:meth:`CircuitBreaker.allow`
while closed); only failures and state changes take the lock.

:func:`call_with_timeout` bounds one stage: the call runs on a small shared thread pool and
the caller stops waiting after ``timeout_s`` (the stage itself cannot be interrupted; it
finishes in the background and its result is dropped). Without a timeout the call runs
inline, with no thread hand-off.

:class:`RetryAfter` is the ASGI middleware that adds ``Retry-After`` to every 503 reply
(database down, model not loaded, shutting down) that does not already carry one.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds of one circuit breaker (SPEC defaults)."""

    # consecutive failures (exceptions or timeouts) that open the breaker
    failure_threshold: int = 5
    # successful half-open trial calls that close it again
    success_threshold: int = 3
    # seconds the breaker stays open before trial calls are let through
    reset_timeout_s: float = 30.0
    # trial calls admitted at once while half-open
    half_open_max_calls: int = 3


@dataclass(frozen=True, slots=True)
class ResilienceConfig:
    """Breakers, per-stage timeouts and outage replies of the serving process."""

    # breaker of the served model's ranking (recommendations fall back to popularity)
    model_breaker: BreakerConfig = field(default_factory=BreakerConfig)
    # seconds Pipeline.rank may take before the popularity fallback is served; None: no
    # limit (the ranking runs inline on the event loop, no thread hand-off: the cheap path
    # issue 12 measured); a limit runs it on a worker thread (~50 µs more per request)
    model_timeout_s: float | None = None
    # breaker of the search query encoder (hybrid search falls back to keyword only)
    encoder_breaker: BreakerConfig = field(default_factory=BreakerConfig)
    # seconds a query embedding may take once the encoder has loaded (SPEC: 300 ms per
    # strategy; 1 s leaves room on shared CI machines). The first, loading call is unbounded
    encoder_timeout_s: float | None = 1.0
    # seconds each /ready check may take before it counts as unhealthy (SPEC: 2 s)
    ready_timeout_s: float = 2.0
    # Retry-After of 503 replies (database down, no model, shutting down), seconds
    retry_after_s: int = 30
    # seconds SonaApp.close waits for in-flight requests before closing the stores
    drain_timeout_s: float = 10.0


class BreakerOpenError(Exception):
    """A call refused because its circuit breaker is open."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        self.name = name
        self.retry_in_s = retry_in_s
        super().__init__(f"circuit breaker {name!r} is open; next trial in {retry_in_s:.1f} s")


class StageTimeoutError(TimeoutError):
    """A stage ran past its timeout (it keeps running in the background)."""

    def __init__(self, stage: str, timeout_s: float) -> None:
        self.stage = stage
        self.timeout_s = timeout_s
        super().__init__(f"{stage} took longer than {timeout_s:g} s")


class CircuitBreaker:
    """A closed / open / half-open breaker around one dependency (see module docstring).

    Args:
        name: the dependency, used in errors and ``/ready``.
        config: thresholds.
        clock: seconds source (monotonic; injectable for tests).
        on_open: called with ``name`` each time the breaker opens (metrics).
    """

    def __init__(self, name: str, config: BreakerConfig = BreakerConfig(), *,
                 clock: Callable[[], float] = time.monotonic,
                 on_open: Callable[[str], None] | None = None) -> None:
        if config.failure_threshold < 1 or config.success_threshold < 1 \
                or config.half_open_max_calls < 1 or config.reset_timeout_s < 0:
            raise ValueError(f"breaker {name!r}: thresholds must be >= 1 and the reset "
                             f"timeout >= 0, got {config}")
        self.name = name
        self.config = config
        self._clock = clock
        self._on_open = on_open
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._successes = 0
        self._trials = 0
        self._opened_at = 0.0
        self.last_error: str | None = None

    @property
    def state(self) -> State:
        """Current state (an open breaker past its reset timeout reads as half-open)."""
        if self._state == "open" and self._clock() - self._opened_at >= \
                self.config.reset_timeout_s:
            return "half_open"
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker admits trial calls (0 when not open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.config.reset_timeout_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go ahead now (counts a half-open trial when it may)."""
        if self._state == "closed":  # the hot path: one attribute read
            return True
        with self._lock:
            if self._state == "open":
                if self._clock() - self._opened_at < self.config.reset_timeout_s:
                    return False
                self._state, self._successes, self._trials = "half_open", 0, 0
            if self._state == "half_open":
                if self._trials >= self.config.half_open_max_calls:
                    return False
                self._trials += 1
            return True

    def record_success(self) -> None:
        """A call succeeded: resets the failure count; closes a half-open breaker after
        ``success_threshold`` successes."""
        if self._state == "closed":
            if self._failures:
                self._failures = 0
            return
        with self._lock:
            if self._state != "half_open":
                return
            self._successes += 1
            self._trials = max(0, self._trials - 1)
            if self._successes >= self.config.success_threshold:
                self._state, self._failures, self.last_error = "closed", 0, None

    def record_failure(self, error: BaseException | str) -> None:
        """A call failed: opens the breaker at the threshold (at once when half-open)."""
        with self._lock:
            self.last_error = str(error) or type(error).__name__
            self._failures += 1
            opening = self._state == "half_open" or (
                self._state == "closed" and self._failures >= self.config.failure_threshold)
            if opening:
                self._state, self._opened_at = "open", self._clock()
                self._successes = self._trials = 0
        if opening and self._on_open is not None:
            self._on_open(self.name)

    def call(self, fn: Callable[[], T], *, timeout_s: float | None = None,
             client_errors: tuple[type[BaseException], ...] = ()) -> T:
        """``fn()`` under this breaker and an optional timeout.

        Args:
            fn: the guarded call.
            timeout_s: stage timeout (None: inline, unbounded).
            client_errors: exception types that mean a bad request, not a broken
                dependency: re-raised without counting as a failure.

        Raises:
            BreakerOpenError: the breaker refused the call.
            StageTimeoutError: ``fn`` ran past ``timeout_s`` (counted as a failure).
            Exception: whatever ``fn`` raised (counted as a failure unless a client error).
        """
        if not self.allow():
            raise BreakerOpenError(self.name, self.retry_in_s())
        try:
            out = call_with_timeout(fn, timeout_s, stage=self.name)
        except client_errors:
            self.record_success()  # the dependency answered; frees a half-open trial
            raise
        except Exception as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return out

    def status(self) -> dict[str, object]:
        """``{"state", "last_error"?, "retry_in_s"?}`` for ``/ready``."""
        out: dict[str, object] = {"state": self.state}
        if self.last_error is not None:
            out["last_error"] = self.last_error
        if self._state == "open":
            out["retry_in_s"] = round(self.retry_in_s(), 1)
        return out


_pool_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def named_pool(name: str, workers: int = 8) -> ThreadPoolExecutor:
    """The process's thread pool called ``name``, created on first use (timed stages and
    the /ready checks each get their own, so a hung check cannot starve a request)."""
    with _pool_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(max_workers=workers,
                                                     thread_name_prefix=f"sona-{name}")
        return pool


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None, *,
                      stage: str = "stage") -> T:
    """``fn()``, abandoned after ``timeout_s`` seconds (None: inline, unbounded).

    Raises:
        StageTimeoutError: the call did not finish in time (it keeps running on its thread).
    """
    if timeout_s is None:
        return fn()
    # the stage's spans stay children of the request's: run it in a copy of this context
    future = named_pool("stage").submit(contextvars.copy_context().run, fn)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        future.cancel()
        raise StageTimeoutError(stage, timeout_s) from None


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means a database cannot be reached or used (not a bad query).

    SQLAlchemy wraps driver errors in :class:`DBAPIError`; operational errors (cannot
    open/lock the file, connection refused or dropped) and pool timeouts are outages, while
    integrity or programming errors are bugs or bad input and stay what they are.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class RetryAfter:
    """ASGI middleware: a 503 reply without ``Retry-After`` gets ``Retry-After: seconds``.

    Args:
        app: the wrapped app.
        seconds: the advertised wait.
    """

    def __init__(self, app: ASGIApp, seconds: int = 30) -> None:
        self.app = app
        self.value = str(int(seconds)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 503:
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    headers.append((b"retry-after", self.value))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)


__all__ = ["BreakerConfig", "BreakerOpenError", "CircuitBreaker", "ResilienceConfig",
           "RetryAfter", "StageTimeoutError", "call_with_timeout", "is_database_outage"]
