"""Token-bucket rate limits per API key, per user and per client IP (SPEC §5, issue 13).

A :class:`Limit` is one bucket: it holds up to ``burst`` tokens (default ``requests``),
refills at ``requests / per_s`` tokens a second, and a request takes one token. A tier has
one or more limits (e.g. SPEC's free tier: 30 a minute *and* 1000 an hour); a request
passes only when every bucket of its tier has a token, and then takes one from each. When
one is empty the answer is the seconds until it refills to one token: the ``Retry-After``
of the 429.

Two stores of bucket state, the same arithmetic:

- :class:`MemoryBuckets` (default): a dict of ``[tokens, last refill]`` per bucket, a few
  float operations per request and no I/O. The buckets are per worker process: with
  ``ServingConfig.workers`` = N a caller whose connections reach several workers can get up
  to N times its limits (one keep-alive connection stays on one worker, so a single client
  usually sees its limit). :func:`warn_per_worker_limits` says so once at start-up; use
  Redis for exact limits;
- :class:`RedisBuckets` (``rate_limits.redis_url``): one Lua script per request, atomic
  across processes and servers, clocked by the Redis server (``TIME``) so servers with
  skewed clocks share buckets correctly; keys expire once a bucket would be full again.

Which bucket a request draws from, and which tier applies, is decided by
:mod:`sona.serving.access`; this module only counts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limit:
    """One token bucket: ``requests`` per ``per_s`` seconds, bursts up to ``burst``."""

    # requests allowed per window (the refill: requests / per_s tokens a second)
    requests: float
    # window length, seconds
    per_s: float = 60.0
    # bucket capacity, requests; None: ``requests`` (a full window's worth at once)
    burst: float | None = None

    @property
    def rate(self) -> float:
        """Refill rate, tokens per second."""
        return self.requests / self.per_s

    @property
    def capacity(self) -> float:
        """Bucket size, tokens."""
        return self.requests if self.burst is None else self.burst


def _per_minute(n: float) -> Limit:
    return Limit(n, 60.0)


def _per_hour(n: float) -> Limit:
    return Limit(n, 3600.0)


@dataclass(frozen=True, slots=True)
class TierLimits:
    """Limits of each kind of caller; every limit of the caller's tier must allow a request.

    The SPEC §5 tier values (requests per minute / per hour) are anonymous 10/100, free
    30/1000, premium 100/5000, enterprise 500/50 000. The users' tiers default to them. The
    anonymous default is far higher, per client IP, so that the console, the test suite
    and a development box are not throttled; set it to SPEC's values in production (see
    the README). API keys are services (the load benchmark, the console's key): their
    default is high enough never to be the bottleneck.
    """

    # callers without credentials, per client IP
    anonymous: tuple[Limit, ...] = (_per_minute(6000),)
    # users with the free_user role, per user
    free_user: tuple[Limit, ...] = (_per_minute(30), _per_hour(1000))
    # users with the premium_user role, per user
    premium_user: tuple[Limit, ...] = (_per_minute(100), _per_hour(5000))
    # users with the admin role, per user
    admin: tuple[Limit, ...] = (_per_minute(6000),)
    # API keys (services), per key
    service: tuple[Limit, ...] = (_per_minute(1_000_000),)

    def of(self, tier: str) -> tuple[Limit, ...]:
        """The limits of ``tier`` (one of the field names).

        Raises:
            ValueError: an unknown tier.
        """
        if tier not in _TIERS:
            raise ValueError(f"unknown rate-limit tier {tier!r}; tiers: {list(_TIERS)}")
        limits: tuple[Limit, ...] = getattr(self, tier)
        return limits


_TIERS = ("anonymous", "free_user", "premium_user", "admin", "service")


@dataclass(frozen=True, slots=True)
class AuthRouteLimits:
    """Extra limits of the credential endpoints, per client IP, against password guessing
    and sign-up floods (SPEC §5: login 10 a minute, register 5 an hour, token 10 a minute)."""

    # POST /api/v1/auth/login
    login: tuple[Limit, ...] = (_per_minute(10),)
    # POST /api/v1/auth/register
    register: tuple[Limit, ...] = (_per_hour(5),)
    # POST /api/v1/auth/refresh
    refresh: tuple[Limit, ...] = (_per_minute(10),)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Rate limits of the serving process (``rate_limits:`` in the serving YAML)."""

    # off: no bucket is ever consulted
    enabled: bool = True
    # redis://host:port/db to share buckets between processes and servers; None: in memory,
    # per worker process: with N workers a caller spread over them gets up to N times its
    # limits (logged once at start-up)
    redis_url: str | None = None
    # prefix of every Redis key
    redis_prefix: str = "sona:rl:"
    # limits per caller tier
    tiers: TierLimits = field(default_factory=TierLimits)
    # extra per-IP limits of the login, register and refresh endpoints
    auth_routes: AuthRouteLimits = field(default_factory=AuthRouteLimits)


class Buckets(Protocol):
    """Where bucket state lives."""

    async def take(self, key: str, limits: tuple[Limit, ...]) -> float:
        """Take a token from every bucket of ``key``; returns 0.0 when the request may pass,
        else the seconds until it would (nothing is taken then)."""
        ...


def check_limits(limits: tuple[Limit, ...], where: str) -> None:
    """Validate limits: positive requests, window and burst >= 1.

    Raises:
        ValueError: names ``where`` and the bad value.
    """
    for i, lim in enumerate(limits):
        if not (lim.requests > 0 and lim.per_s > 0 and lim.capacity >= 1):
            raise ValueError(f"{where}[{i}]: requests and per_s must be > 0 and burst >= 1, "
                             f"got {lim}")


class MemoryBuckets:
    """Bucket state in a dict (one process).

    Args:
        max_keys: when more buckets than this exist, the ones that have refilled to full
            (indistinguishable from new ones) are dropped, so memory stays bounded under a
            flood of distinct IPs.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(self, max_keys: int = 100_000, clock: Any = time.monotonic) -> None:
        self._state: dict[str, list[float]] = {}
        self.max_keys = int(max_keys)
        self._clock = clock

    def take_now(self, key: str, limits: tuple[Limit, ...]) -> float:
        """:meth:`take` without the coroutine (the arithmetic of both stores)."""
        now = float(self._clock())
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self.max_keys:
                self._prune(now, limits)
            # [tokens_0, tokens_1, ..., last refill time]
            state = [lim.capacity for lim in limits] + [now]
            self._state[key] = state
        elapsed = max(now - state[-1], 0.0)
        state[-1] = now
        wait = 0.0
        for i, lim in enumerate(limits):
            tokens = min(lim.capacity, state[i] + elapsed * lim.rate)
            state[i] = tokens
            if tokens < 1.0:
                wait = max(wait, (1.0 - tokens) / lim.rate)
        if wait == 0.0:
            for i in range(len(limits)):
                state[i] -= 1.0
        return wait

    async def take(self, key: str, limits: tuple[Limit, ...]) -> float:
        """See :class:`Buckets`."""
        return self.take_now(key, limits)

    def _prune(self, now: float, limits: tuple[Limit, ...]) -> None:
        refill = max(lim.capacity / lim.rate for lim in limits)
        stale = [k for k, s in self._state.items() if now - s[-1] >= refill]
        for k in stale:
            del self._state[k]
        if len(self._state) >= self.max_keys:  # all busy: forget the oldest half
            for k, _ in sorted(self._state.items(), key=lambda kv: kv[1][-1])[
                    : len(self._state) // 2]:
                del self._state[k]


# KEYS: one hash per limit; ARGV: rate_1, capacity_1, rate_2, capacity_2, ...
# Returns the wait in seconds as a string (Lua numbers become integers on return).
_TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
local tokens = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 's')
  local have = tonumber(v[1]) or cap
  local stamp = tonumber(v[2]) or now
  have = math.min(cap, have + math.max(0, now - stamp) * rate)
  tokens[i] = have
  if have < 1 then wait = math.max(wait, (1 - have) / rate) end
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local have = tokens[i]
  if wait == 0 then have = have - 1 end
  redis.call('HSET', KEYS[i], 't', tostring(have), 's', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - have) / rate * 1000) + 1000)
end
return tostring(wait)
"""


class RedisBuckets:
    """Bucket state in Redis: one atomic script call per request, shared by every process.

    A Redis that cannot be reached lets requests through (logged once a minute): a limiter
    outage must not take the API down with it.

    Args:
        url: ``redis://host:port/db``.
        prefix: prefix of every key.
        client: an existing ``redis.asyncio`` client (tests pass a fakeredis one).
    """

    def __init__(self, url: str | None, *, prefix: str = "sona:rl:",
                 client: Any = None) -> None:
        if client is None:
            if not url:
                raise ValueError("RedisBuckets needs a redis:// URL or a client")
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(url)
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_TAKE_SCRIPT)
        self._last_warning = -math.inf

    async def take(self, key: str, limits: tuple[Limit, ...]) -> float:
        """See :class:`Buckets`."""
        keys = [f"{self.prefix}{key}:{i}" for i in range(len(limits))]
        args: list[float] = []
        for lim in limits:
            args += [lim.rate, lim.capacity]
        try:
            out = await self._script(keys=keys, args=args)
        except Exception as exc:  # fail open, see the class docstring
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("rate limiter: Redis unavailable (%s); requests pass unlimited",
                            exc)
            return 0.0
        return float(out.decode() if isinstance(out, bytes) else out)

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()


def make_buckets(config: RateLimitConfig) -> Buckets:
    """The bucket store ``config`` names: Redis when ``redis_url`` is set, else memory."""
    if config.redis_url:
        return RedisBuckets(config.redis_url, prefix=config.redis_prefix)
    return MemoryBuckets()


def warn_per_worker_limits(config: RateLimitConfig, workers: int) -> bool:
    """Log a warning when ``workers`` processes (0: one per core, as
    ``ServingConfig.workers``) each keep their own in-memory buckets.

    Called once per worker at start-up (:class:`~sona.serving.app.SonaApp`).

    Returns:
        whether the limits are per worker (enabled, no Redis, more than one worker).
    """
    if workers == 0:
        workers = os.cpu_count() or 1
    per_worker = config.enabled and not config.redis_url and workers > 1
    if per_worker:
        log.warning("rate limits are kept in memory by each of the %d workers: a caller "
                    "whose connections reach several workers can get up to %dx its limits; "
                    "set rate_limits.redis_url for exact limits shared by every worker",
                    workers, workers)
    return per_worker


def validate_rate_limits(config: RateLimitConfig) -> None:
    """Check every limit of ``config`` (see :func:`check_limits`).

    Raises:
        ValueError: the first bad limit, by its config path.
    """
    for tier in _TIERS:
        check_limits(config.tiers.of(tier), f"rate_limits.tiers.{tier}")
    for route in ("login", "register", "refresh"):
        check_limits(getattr(config.auth_routes, route), f"rate_limits.auth_routes.{route}")


__all__ = [
    "AuthRouteLimits", "Buckets", "Limit", "MemoryBuckets", "RateLimitConfig", "RedisBuckets",
    "TierLimits", "check_limits", "make_buckets", "validate_rate_limits",
    "warn_per_worker_limits",
]
