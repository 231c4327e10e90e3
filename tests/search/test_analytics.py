from __future__ import annotations

import pytest

from sona.db import sqlite_url
from sona.errors import UnknownIdError
from sona.search.analytics import SearchAnalytics, normalize_query, sha256


@pytest.fixture()
def analytics(tmp_path) -> SearchAnalytics:
    return SearchAnalytics(data_dir=tmp_path)


def test_report_counts_ctr_zero_results_and_latency(analytics, tmp_path):
    now = 1_000_000.0
    e1 = analytics.log_search("Star Wars", result_count=10, latency_ms=10, user_id="u1",
                              shown_ids=[50, 172], timestamp=now - 60)
    analytics.log_search("star  wars ", result_count=8, latency_ms=20, timestamp=now - 120)
    analytics.log_search("zorblax", result_count=0, latency_ms=30, timestamp=now - 180)
    analytics.log_search("old query", result_count=3, latency_ms=5, timestamp=now - 7200)
    analytics.log_click(e1, 172, 2, timestamp=now)
    analytics.log_click(e1, 50, 1, timestamp=now)
    rep = analytics.report("1h", now=now)
    assert rep["total_searches"] == 3 and rep["unique_queries"] == 2
    assert rep["zero_result_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert rep["click_through_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert rep["avg_latency_ms"] == 20.0 and rep["p95_latency_ms"] == pytest.approx(29.0)
    assert rep["top_queries"][0] == {"query": "star wars", "search_count": 2,
                                     "avg_results": 9.0, "avg_latency_ms": 15.0}
    assert rep["zero_result_queries"] == [{"query": "zorblax", "search_count": 1}]
    assert analytics.report("24h", now=now)["total_searches"] == 4
    assert (tmp_path / "search_analytics.db").exists()
    # persisted: a second store on the same file sees the same events
    again = SearchAnalytics(sqlite_url(tmp_path / "search_analytics.db"))
    assert again.report("1h", now=now)["total_searches"] == 3


def test_impressions_for_learning_to_rank(analytics):
    e = analytics.log_search("heat", result_count=2, latency_ms=1, shown_ids=[9, 8])
    analytics.log_click(e, 8, 2)
    frame = analytics.impressions()
    assert frame[["content_id", "position", "clicked"]].values.tolist() == [
        ["9", 1, False], ["8", 2, True]]
    assert analytics.query_counts() == {"heat": 1}


def test_errors_and_anonymisation(analytics):
    with pytest.raises(UnknownIdError, match="search event"):
        analytics.log_click(12345, 1, 1)
    e = analytics.log_search("x", result_count=1, latency_ms=1)
    with pytest.raises(ValueError, match="1-based"):
        analytics.log_click(e, 1, 0)
    with pytest.raises(ValueError, match="unknown period"):
        analytics.report("2h")
    assert analytics.report("7d", limit=1)["total_searches"] == 1
    assert sha256("u1") != "u1" and len(sha256("u1")) == 64
    assert normalize_query("  Star   WARS ") == "star wars"
