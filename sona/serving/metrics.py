"""Prometheus metrics of the serving process (exposed on BentoML's ``/metrics``).

Metrics are created lazily by :func:`serving_metrics` on first use inside the server
worker: BentoML configures prometheus-client's multiprocess directory before it builds the
service, and metrics created earlier (at import in the parent process) would be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

#: latency buckets in seconds: sub-millisecond scoring up to multi-second outliers
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    """Request latency per endpoint, latency per candidate source, swaps, trainings,
    fallbacks, breaker openings and database outages."""

    def __init__(self) -> None:
        self.request_seconds = Histogram(
            "sona_request_duration_seconds", "Handler latency per endpoint and status class",
            ["endpoint", "status"], buckets=BUCKETS)
        self.source_seconds = Histogram(
            "sona_candidate_source_duration_seconds", "Latency per candidate source / stage",
            ["source"], buckets=BUCKETS)
        self.model_swaps = Counter("sona_model_swaps_total", "Model versions swapped in",
                                   ["name", "version"])
        self.lora_trainings = Counter("sona_lora_trainings_total", "LoRA adapter trainings",
                                      ["trigger", "outcome"])
        self.cold_start = Counter("sona_cold_start_total", "Cold-start responses by strategy",
                                  ["strategy"])
        # resilience (sona.serving.resilience): fallbacks served and breakers opened
        self.fallbacks = Counter("sona_fallback_total", "Responses served by a fallback "
                                 "(stage: model -> popularity, encoder -> keyword only)",
                                 ["stage"])
        self.breaker_opened = Counter("sona_circuit_breaker_opened_total",
                                      "Times a circuit breaker opened", ["breaker"])
        # every breaker and fallback stage exports 0 from the start, so alert rules see a
        # series (an absent one never fires); ops/prometheus/sona-alerts.yml uses them
        for stage in ("model", "encoder"):
            self.fallbacks.labels(stage)
        for breaker in ("model", "search_encoder"):
            self.breaker_opened.labels(breaker)
        self.database_unavailable = Counter("sona_database_unavailable_total",
                                            "Requests answered 503 for a database outage",
                                            ["endpoint"])

        # the labelled children of the per-request histograms, looked up once per label
        # set: ``.labels()`` validates and joins the labels under a lock on every call
        # (issue 12); a child is the same object for good (nothing removes one)
        self._sources: dict[str, Histogram] = {}
        self._requests: dict[tuple[str, int], Histogram] = {}

    @contextmanager
    def time_source(self, source: str) -> Iterator[None]:
        """Observe the duration of the block under ``source``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            child = self._sources.get(source)
            if child is None:
                child = self._sources.setdefault(source, self.source_seconds.labels(source))
            child.observe(time.perf_counter() - start)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one handled request (status grouped as 2xx/4xx/5xx)."""
        group = status // 100
        child = self._requests.get((endpoint, group))
        if child is None:
            child = self._requests.setdefault((endpoint, group), self.request_seconds.labels(
                endpoint, f"{group}xx"))
        child.observe(seconds)


_lock = threading.Lock()
_metrics: ServingMetrics | None = None


def serving_metrics() -> ServingMetrics:
    """The process-wide :class:`ServingMetrics` (created on first call)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = ServingMetrics()
        return _metrics


__all__ = ["BUCKETS", "ServingMetrics", "serving_metrics"]
