"""Closed-loop HTTP load generator (asyncio + aiohttp) for loopback benchmarks.

``concurrency`` workers each keep one request in flight on a keep-alive connection until
``duration_s`` elapses or ``max_requests`` have been sent, whichever comes first (so a run
is bounded in both time and count). Latency is measured per request on the client, from
send to the end of the body. Any non-2xx status or transport error counts as an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BodyFn = Callable[[np.random.Generator], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Outcome of one endpoint's load run."""

    endpoint: str
    concurrency: int
    n_requests: int
    n_errors: int
    duration_s: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"endpoint": self.endpoint, "concurrency": self.concurrency,
                "n_requests": self.n_requests, "n_errors": self.n_errors,
                "duration_s": self.duration_s, "rps": self.rps, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "p99_ms": self.p99_ms, "mean_ms": self.mean_ms,
                "statuses": self.statuses}


async def _drive(url: str, body: BodyFn, concurrency: int, duration_s: float,
                 max_requests: int, seed: int) -> tuple[list[float], Counter[str], float]:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker(wid: int) -> None:
            nonlocal sent
            rng = np.random.default_rng(seed + wid)
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                payload = body(rng)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=payload) as resp:
                        await resp.read()
                        statuses[str(resp.status)] += 1
                except (TimeoutError, aiohttp.ClientError) as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, statuses, elapsed


def run_load(base_url: str, path: str, body: BodyFn, *, concurrency: int = 16,
             duration_s: float = 10.0, max_requests: int = 50_000, seed: int = 0,
             name: str | None = None) -> LoadStats:
    """POST ``body(rng)`` to ``base_url + path`` under closed-loop load; returns statistics.

    Raises:
        ValueError: ``base_url`` is not a loopback address (benchmarks stay local).
    """
    if not base_url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError(f"load tests target loopback only, got {base_url!r}")
    if concurrency < 1 or duration_s <= 0 or max_requests < 1:
        raise ValueError("concurrency, duration_s and max_requests must be positive")
    lat, statuses, elapsed = asyncio.run(_drive(base_url + path, body, concurrency, duration_s,
                                                max_requests, seed))
    ms = np.asarray(lat) * 1000.0
    ok = sum(v for k, v in statuses.items() if k.isdigit() and 200 <= int(k) < 300)
    pct = np.percentile(ms, [50, 95, 99]) if len(ms) else np.full(3, np.nan)
    return LoadStats(name or path, concurrency, len(lat), len(lat) - ok, elapsed,
                     len(lat) / elapsed if elapsed > 0 else 0.0, float(pct[0]), float(pct[1]),
                     float(pct[2]), float(ms.mean()) if len(ms) else float("nan"),
                     dict(statuses))


def settle(base_url: str, cases: list[tuple[str, BodyFn]], *, concurrency: int = 8,
           seconds: float = 0.5, timeout_s: float = 120.0) -> None:
    """Bring a just-started SONA server to steady state before it is measured.

    ``/ready`` answers while the search query encoder still loads on a background thread
    (importing torch/transformers holds the GIL for seconds: 100+ ms stalls and a third of
    the requests lost), so one search request is sent first (it waits for that load); then
    each of ``cases`` (path, body) is driven for ``seconds`` and discarded.
    """
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(base_url + "/api/v1/search", method="POST",
                                 data=json.dumps({"query": "warm up"}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (loopback)
            resp.read()
    except urllib.error.HTTPError as exc:  # search may be unavailable: nothing to wait for
        log.info("settle: search answered %s", exc.code)
    for path, body in cases:
        run_load(base_url, path, body, concurrency=concurrency, duration_s=seconds,
                 max_requests=10_000, name="settle")


def ratios(stats: list[LoadStats], ceiling: LoadStats | None) -> dict[str, float | None]:
    """Each endpoint's RPS as a fraction of ``ceiling``'s (None without a usable ceiling)."""
    base = ceiling.rps if ceiling is not None and ceiling.rps > 0 else 0.0
    return {s.endpoint: (s.rps / base if base else None) for s in stats}


__all__ = ["BodyFn", "LoadStats", "ratios", "run_load", "settle"]
