"""Serving metrics: the labelled children are looked up once and still count per label."""

from __future__ import annotations

from prometheus_client import REGISTRY

from sona.serving.metrics import serving_metrics


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_cached_children_count_each_label_set() -> None:
    m = serving_metrics()
    req = "sona_request_duration_seconds_count"
    before = {s: _count(req, endpoint="metrics_test", status=s) for s in ("2xx", "4xx")}
    for status in (200, 201, 404, 200):
        m.observe_request("metrics_test", status, 0.002)
    assert _count(req, endpoint="metrics_test", status="2xx") == before["2xx"] + 3
    assert _count(req, endpoint="metrics_test", status="4xx") == before["4xx"] + 1
    assert m._requests[("metrics_test", 2)] is m.request_seconds.labels("metrics_test", "2xx")
    src = "sona_candidate_source_duration_seconds_count"
    start = _count(src, source="metrics_test")
    for _ in range(2):
        with m.time_source("metrics_test"):
            pass
    assert _count(src, source="metrics_test") == start + 2
