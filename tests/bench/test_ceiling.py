import shutil

import pytest

from sona.bench.ceiling import PING_PATH, CeilingServer
from sona.bench.load import LoadStats, ratios, run_wrk
from sona.bench.load_cases import ping_case


def _stats(name: str, rps: float) -> LoadStats:
    return LoadStats(name, 2, 1.0, 10, rps, 1.0, 2.0, 3.0, 4.0, 1.2, 0, 0)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install "
                                                        "-y wrk); the bench needs it, CI does not")
def test_ceiling_server_serves_ping_under_wrk():
    with CeilingServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        stats = run_wrk(server.url, ping_case(), connections=2, duration_s=1, salt="t")
    assert server.proc is None  # stopped on exit
    assert stats.endpoint == "ping" and stats.connections == 2
    assert stats.errors == 0 and stats.non2xx == 0 and stats.requests > 0 and stats.rps > 0
    assert 0 < stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    assert PING_PATH == ping_case().path


def test_ratios_to_a_ceiling():
    stats = [_stats("ping", 800.0), _stats("recommendations", 400.0)]
    assert ratios(stats, _stats("starlette", 1600.0)) == {
        "ping": pytest.approx(0.5), "recommendations": pytest.approx(0.25)}
    assert ratios(stats, _stats("starlette", 0.0)) == {"ping": None, "recommendations": None}
    assert ratios(stats, None) == {"ping": None, "recommendations": None}
