import json

import pytest

from sona.bench.ceiling import PING_PATH, CeilingServer
from sona.bench.load import LoadStats, ratios, run_load


def _stats(name: str, rps: float) -> LoadStats:
    return LoadStats(name, 2, 10, 0, 1.0, rps, 1.0, 2.0, 3.0, 1.2, {"200": 10})


def test_ceiling_server_serves_ping_under_load():
    with CeilingServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        stats = run_load(server.url, PING_PATH, lambda rng: {}, concurrency=2, duration_s=0.5,
                         max_requests=200, name="starlette")
    assert server.proc is None  # stopped on exit
    assert stats.n_errors == 0 and stats.statuses == {"200": stats.n_requests}
    assert 0 < stats.n_requests <= 200 and stats.rps > 0
    assert 0 < stats.p50_ms <= stats.p95_ms <= stats.p99_ms
    json.dumps(stats.to_dict())


def test_ratios_to_a_ceiling():
    stats = [_stats("ping", 800.0), _stats("recommendations", 400.0)]
    assert ratios(stats, _stats("starlette", 1600.0)) == {
        "ping": pytest.approx(0.5), "recommendations": pytest.approx(0.25)}
    assert ratios(stats, _stats("starlette", 0.0)) == {"ping": None, "recommendations": None}
    assert ratios(stats, None) == {"ping": None, "recommendations": None}
