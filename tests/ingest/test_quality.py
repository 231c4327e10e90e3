from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from sona.catalog import CatalogStore, ContentItem, ExternalIds, Images
from sona.ingest.quality import QualityConfig, quality_report, quality_score, recalculate_quality

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def full(days_old: float = 0.0, **kw) -> ContentItem:
    stamp = NOW - timedelta(days=days_old)
    data = dict(title="Fargo", overview="Snow.", release_year=1996, runtime_minutes=98,
                genres=["crime"], average_rating=8.1,
                external_ids=ExternalIds(imdb_id="tt0116282"),
                images=Images(poster_medium="https://i/p.jpg", backdrop="https://i/b.jpg"),
                created_at=stamp, updated_at=stamp, last_updated=stamp)
    return ContentItem(**(data | kw))


def test_complete_fresh_record_reaches_exactly_one():
    q = quality_score(full(), now=NOW)
    assert (q.fields, q.freshness, q.base, q.score) == (pytest.approx(0.85), 1.0, 1.0, 1.0)
    assert q.missing_fields == []


def test_thirty_days_decay_by_hand():
    f = math.exp(-0.3)  # 0.7408
    base = 0.85 + 0.15 * f  # 0.9611
    q = quality_score(full(30), now=NOW)
    assert q.freshness == pytest.approx(f)
    assert q.base == pytest.approx(base)
    assert q.score == pytest.approx(base * f)  # 0.7120 > floor 0.4806


def test_old_record_is_floored_at_half_its_base():
    base = 0.85 + 0.15 * math.exp(-2.0)
    q = quality_score(full(200), now=NOW)
    assert q.score == pytest.approx(0.5 * base)  # decayed 0.1178 < floor 0.4352


def test_sparse_record_lists_missing_fields():
    item = ContentItem(title="Ran", genres=["drama", "war"], images=Images(poster_small="s.jpg"),
                       created_at=NOW, updated_at=NOW, last_updated=NOW)
    q = quality_score(item, now=NOW)
    assert q.fields == pytest.approx(0.10) and q.score == pytest.approx(0.25)
    assert q.missing_fields == ["description", "poster", "backdrop", "release_year", "runtime",
                                "rating", "external_id"]


def test_tmdb_alone_counts_and_weights_are_configurable():
    item = full(external_ids=ExternalIds(tmdb_id="275"))
    assert quality_score(item, now=NOW).score == 1.0
    cfg = QualityConfig(freshness_weight=0.0)
    assert quality_score(item, now=NOW, config=cfg).score == pytest.approx(0.85)


def test_report_lists_worst_first_below_threshold():
    good, mid, bad = full(), full(overview=None, average_rating=None), full(
        overview=None, average_rating=None, images=Images(), external_ids=ExternalIds())
    # mid: 0.85-0.30+0.15 = 0.70 ; bad: 0.70-0.25-0.10 = 0.35
    report = quality_report([good, mid, bad], now=NOW, threshold=0.75)
    assert report.total_low_quality == 2 and report.threshold == 0.75
    assert [r.id for r in report.low_quality_items] == [bad.canonical_id, mid.canonical_id]
    assert report.low_quality_items[0].quality_score == pytest.approx(0.35)
    assert report.low_quality_items[0].missing_fields == [
        "description", "poster", "backdrop", "rating", "external_id"]
    capped = quality_report([good, mid, bad], now=NOW, threshold=0.75, limit=1)
    assert capped.total_low_quality == 2 and len(capped.low_quality_items) == 1
    assert capped.low_quality_items[0].id == bad.canonical_id
    with pytest.raises(ValueError, match="threshold"):
        quality_report([], now=NOW, threshold=1.5)


def test_batch_recalculation_updates_store_and_audits(tmp_path):
    store = CatalogStore(f"sqlite:///{tmp_path}/c.db")
    a, b = full(), full(60)
    store.put_many([a, b])
    assert recalculate_quality(store, now=NOW) == 2
    assert store.get(a.canonical_id).data_quality_score == 1.0
    f = math.exp(-0.6)
    assert store.get(b.canonical_id).data_quality_score == pytest.approx((0.85 + 0.15 * f) * f,
                                                                         abs=1e-6)
    assert store.get(b.canonical_id).last_updated == b.last_updated  # freshness not reset
    assert recalculate_quality(store, now=NOW) == 0
    job = store.audit_log(action="admin_action")
    assert job[0].details == {"job": "quality_recalculation", "items": 2, "changed": 0}
