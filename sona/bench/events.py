"""Event-log volume and durability (issue 11 item 5): what ``sona bench events`` measures.

Three figures, each on the same synthetic traffic (:func:`synthetic_batches`: batches of
one viewer's events, as a device flushes its queue; a mix of playback starts, pauses,
resumes, progress, completions, views, ratings and searches on ML-100K titles):

* **store**: :meth:`EventLog.append` directly, one transaction per batch: the ceiling;
* **http**: the same batches through ``POST /api/v1/events/log`` of a real server on
  127.0.0.1 (``threads`` keep-alive clients), acknowledged only after the commit, with the
  rating/view/progress events updating the viewers' profiles live;
* **kill -9**: clients post batches while the server is killed with ``SIGKILL`` mid-burst;
  afterwards every acknowledged event id must be in the log (``lost`` must be 0).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sona.events import EventLog, LogEvent
from sona.serving.process import ServerProcess

#: (event type, share of traffic); metadata is filled per type
MIX: tuple[tuple[str, float], ...] = (
    ("playback_start", 0.15), ("playback_pause", 0.10), ("playback_resume", 0.10),
    ("playback_progress", 0.25), ("playback_complete", 0.10), ("playback_abandon", 0.05),
    ("content_view", 0.10), ("content_rating", 0.05), ("search_query", 0.10))


@dataclass(frozen=True, slots=True)
class Rate:
    """Throughput of one run."""

    events: int
    batches: int
    seconds: float
    batch_ms_p50: float
    batch_ms_p99: float
    errors: int = 0

    @property
    def events_per_s(self) -> float:
        """Events acknowledged per wall-clock second."""
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"events": self.events, "batches": self.batches,
                "seconds": round(self.seconds, 3), "events_per_s": round(self.events_per_s, 1),
                "batch_ms_p50": round(self.batch_ms_p50, 2),
                "batch_ms_p99": round(self.batch_ms_p99, 2), "errors": self.errors}


Batch = list[dict[str, Any]]


def synthetic_batches(n_events: int, batch_size: int, *, titles: Sequence[str],
                      users: Sequence[str], prefix: str, seed: int = 0) -> list[Batch]:
    """``n_events`` wire events (``POST /api/v1/events/log`` items) in one-viewer batches."""
    rng = random.Random(seed)
    kinds, shares = zip(*MIX, strict=True)
    out: list[Batch] = []
    made = 0
    t0 = 1_796_000_000.0
    while made < n_events:
        user = rng.choice(users)
        batch = []
        for _ in range(min(batch_size, n_events - made)):
            kind = rng.choices(kinds, shares)[0]
            event: dict[str, Any] = {"event_id": f"{prefix}-{made}", "user_id": user,
                                     "event_type": kind, "timestamp": t0 + made,
                                     "device_id": "bench"}
            if kind == "search_query":
                event["metadata"] = {"query": "space"}
            else:
                event["content_id"] = rng.choice(titles)
                if kind in ("playback_progress", "playback_abandon"):
                    event["metadata"] = {"completion_rate": round(rng.random(), 3)}
                elif kind == "content_rating":
                    event["metadata"] = {"rating": rng.randint(1, 5)}
            batch.append(event)
            made += 1
        out.append(batch)
    return out


def _log_events(batch: list[dict[str, Any]]) -> list[LogEvent]:
    return [LogEvent(e["event_id"], e["user_id"], e["event_type"], e["timestamp"],
                     e.get("content_id"), e.get("metadata", {}), e.get("device_id"))
            for e in batch]


def _rate(events: int, latencies: list[float], seconds: float, errors: int = 0) -> Rate:
    ms = np.asarray(latencies, np.float64) * 1000.0 if latencies else np.zeros(1)
    return Rate(events, len(latencies), seconds, float(np.percentile(ms, 50)),
                float(np.percentile(ms, 99)), errors)


def bench_store(url: str, batches: list[list[dict[str, Any]]]) -> Rate:
    """Append every batch straight into the log at ``url`` (one transaction each)."""
    log = EventLog(url)
    try:
        prepared = [_log_events(b) for b in batches]
        latencies = []
        start = time.perf_counter()
        for batch in prepared:
            t = time.perf_counter()
            log.append(batch)
            latencies.append(time.perf_counter() - t)
        return _rate(sum(len(b) for b in prepared), latencies, time.perf_counter() - start)
    finally:
        log.close()


class _Poster:
    """A keep-alive JSON client of ``POST /api/v1/events/log``."""

    def __init__(self, base_url: str, key: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}

    def post(self, batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        self.conn.request("POST", "/api/v1/events/log", json.dumps({"events": batch}),
                          self.headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")

    def close(self) -> None:
        self.conn.close()


def bench_http(base_url: str, key: str, batches: list[list[dict[str, Any]]], *,
               threads: int = 4) -> Rate:
    """Post every batch through the real route with ``threads`` clients; counts the events
    acknowledged (a non-200 answer is an error, its events not counted)."""
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"events": 0, "errors": 0}
    queue = list(reversed(batches))

    def work() -> None:
        client = _Poster(base_url, key)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    batch = queue.pop()
                t = time.perf_counter()
                status, body = client.post(batch)
                took = time.perf_counter() - t
                with lock:
                    latencies.append(took)
                    if status == 200:
                        counts["events"] += len(body["accepted"]) + len(body["duplicates"])
                    else:
                        counts["errors"] += 1
        finally:
            client.close()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return _rate(counts["events"], latencies, time.perf_counter() - start, counts["errors"])


@dataclass(frozen=True, slots=True)
class Durability:
    """Outcome of a kill -9 during a burst of batched posts."""

    acknowledged: int  # event ids the server acknowledged before it died
    stored: int  # event ids of the burst in the log afterwards (acked or not)
    lost: int  # acknowledged but not stored (must be 0)
    integrity: str  # SQLite's integrity_check ("ok"), or the backend name

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"acknowledged": self.acknowledged, "stored": self.stored, "lost": self.lost,
                "integrity": self.integrity}


def kill_during_burst(config: str | Path, key: str, events_url: str,
                      batches: list[list[dict[str, Any]]], *, min_acknowledged: int = 2000,
                      threads: int = 4, timeout_s: float = 120.0) -> Durability:
    """Start a server on ``config``, post ``batches`` until ``min_acknowledged`` events are
    acknowledged, ``SIGKILL`` its process group mid-burst, then compare with the log at
    ``events_url``."""
    server = ServerProcess(config).start()
    acked: set[str] = set()
    lock, stop = threading.Lock(), threading.Event()
    queue = list(reversed(batches))

    def burst() -> None:
        client = _Poster(server.url, key)
        try:
            while not stop.is_set():
                with lock:
                    if not queue:
                        return
                    batch = queue.pop()
                try:
                    status, body = client.post(batch)
                except (OSError, http.client.HTTPException):  # died under us: not acked
                    return
                if status == 200:
                    with lock:
                        acked.update(body["accepted"])
                        acked.update(body["duplicates"])
        finally:
            client.close()

    pool = [threading.Thread(target=burst) for _ in range(threads)]
    for th in pool:
        th.start()
    deadline = time.monotonic() + timeout_s
    while len(acked) < min_acknowledged and time.monotonic() < deadline and \
            any(th.is_alive() for th in pool):
        time.sleep(0.02)
    assert server.proc is not None
    os.killpg(os.getpgid(server.proc.pid), signal.SIGKILL)  # kill -9 mid-burst
    stop.set()
    for th in pool:
        th.join(30)
    server.stop()
    with lock:
        acknowledged = set(acked)
    burst_ids = {e["event_id"] for batch in batches for e in batch}
    log = EventLog(events_url)
    try:
        stored = log.ids() & burst_ids
        integrity = log.engine.dialect.name
        if integrity == "sqlite":
            with log.engine.connect() as conn:
                integrity = str(conn.exec_driver_sql("PRAGMA integrity_check").scalar())
    finally:
        log.close()
    return Durability(len(acknowledged), len(stored), len(acknowledged - stored), integrity)


__all__ = ["MIX", "Durability", "Rate", "bench_http", "bench_store", "kill_during_burst",
           "synthetic_batches"]
