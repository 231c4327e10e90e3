from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from sona.catalog import Actor, Availability, CatalogConflictError, CatalogStore, ContentItem
from sona.errors import UnknownIdError


@pytest.fixture
def store(tmp_path):
    s = CatalogStore(f"sqlite:///{tmp_path}/catalog.db")
    yield s
    s.close()


def _item(title="The Matrix", **kw) -> ContentItem:
    return ContentItem(title=title, release_year=1999, genres=["sci_fi", "action"], **kw)


def test_sqlite_runs_in_wal_mode(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_crud_round_trip_with_audit_rows(store):
    admin = Actor(user_id="admin-1", ip="127.0.0.1", user_agent="pytest")
    item = _item(embedding=[0.5, -0.25], availability=[Availability(
        platform="netflix", availability_type="subscription", regions=["US", "GB"])])
    store.add(item, actor=admin)
    got = store.get(item.canonical_id)
    assert got.title == "The Matrix" and got.genres == ["action", "sci_fi"]
    assert got.embedding == [0.5, -0.25]
    assert got.availability[0].regions == ["US", "GB"]
    assert got.created_at.tzinfo is not None

    later = datetime(2030, 1, 1, tzinfo=UTC)
    upd = store.update(item.canonical_id, {"overview": "Neo wakes up."}, actor=admin, now=later)
    assert upd.overview == "Neo wakes up." and upd.updated_at == later
    assert store.get(item.canonical_id).last_updated == later

    store.delete(item.canonical_id, actor=admin)
    assert store.find(item.canonical_id) is None and store.count() == 0
    rows = store.audit_log(user_id="admin-1")
    assert [r.action for r in rows] == ["content_deleted", "content_updated", "content_created"]
    assert rows[1].details == {"fields": ["overview"]}
    assert all(r.resource_id == item.canonical_id and r.ip == "127.0.0.1" for r in rows)


def test_errors_name_the_problem(store):
    item = store.add(_item())
    with pytest.raises(CatalogConflictError, match=item.canonical_id):
        store.add(item)
    with pytest.raises(UnknownIdError, match="nope"):
        store.get("nope")
    with pytest.raises(ValueError, match="canonical_id"):
        store.update(item.canonical_id, {"canonical_id": "x"})
    with pytest.raises(ValidationError):
        store.update(item.canonical_id, {"genres": ["science_fiction"]})


def test_availability_replaces_only_that_platform(store):
    item = store.add(_item(availability=[
        Availability(platform="netflix", availability_type="subscription"),
        Availability(platform="youtube", availability_type="rental", price_cents=399)]))
    out = store.set_availability(item.canonical_id, "youtube", [
        Availability(platform="youtube", availability_type="purchase", price_cents=1299)])
    assert sorted((a.platform, a.availability_type) for a in out.availability) == [
        ("netflix", "subscription"), ("youtube", "purchase")]
    assert out.source_platforms == ["netflix", "youtube"]


def test_list_filters_and_pages(store):
    store.put_many([_item(f"Title {i:02d}", source_platforms=["hulu"] if i % 2 else [])
                    for i in range(10)])
    assert [i.title for i in store.list_items(limit=3, offset=2)] == [
        "Title 02", "Title 03", "Title 04"]
    assert [i.title for i in store.list_items(platform="hulu", limit=2)] == ["Title 01", "Title 03"]
    assert len(list(store.iter_items(batch_size=3))) == 10 == store.count()


def test_entity_mapping_upsert_keeps_one_row(store):
    store.upsert_mappings([("tt0133093", "imdb", "e1", 0.99), ("603", "tmdb", "e1", 0.99)])
    store.upsert_mappings([("tt0133093", "imdb", "e2", 0.9)])
    assert store.lookup_mapping("tt0133093", "imdb") == ("e2", 0.9)
    assert store.lookup_mapping("603", "imdb") is None
    assert len(store.mappings()) == 2


def test_audit_filters_by_action_and_date_range(store):
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    store.audit("admin_action", "ranking", "default", {"weights": [0.35]}, actor=Actor(user_id="a"))
    store.audit("api_key_created", "api_key", "k1", actor=Actor(user_id="b"))
    t1 = datetime.now(UTC) + timedelta(seconds=1)
    assert [r.resource_id for r in store.audit_log(action="admin_action")] == ["default"]
    assert len(store.audit_log(since=t0, until=t1)) == 2
    assert store.audit_log(since=t1) == []
    assert [r.action for r in store.audit_log(user_id="b")] == ["api_key_created"]


def test_postgresql_by_url_crud_upsert_and_audit(postgres_url):
    store = CatalogStore(postgres_url)
    try:
        item = store.add(_item(embedding=[0.25, 0.5], source_platforms=["hulu"],
                               availability=[Availability(platform="hulu",
                                                          availability_type="rental",
                                                          price_cents=399, regions=["US"])]))
        got = store.get(item.canonical_id)
        assert got.embedding == [0.25, 0.5] and got.availability[0].price_cents == 399
        assert got.created_at.tzinfo is not None
        store.update(item.canonical_id, {"title": "The Matrix Reloaded"})
        store.upsert_mappings([("tt0133093", "imdb_id", item.canonical_id, 0.99),
                               ("603", "tmdb_id", item.canonical_id, 0.99)] * 3)
        store.upsert_mappings([("tt0133093", "imdb_id", item.canonical_id, 1.0)])
        assert store.lookup_mapping("tt0133093", "imdb_id") == (item.canonical_id, 1.0)
        assert [i.title for i in store.list_items(platform="hulu")] == ["The Matrix Reloaded"]
        store.delete(item.canonical_id)
        actions = [r.action for r in store.audit_log(resource_id=item.canonical_id)]
        assert actions == ["content_deleted", "content_updated", "content_created"]
        assert store.mappings() == []
    finally:
        store.close()


def test_ingest_pipeline_writes_to_postgresql(postgres_url, ml100k):
    from sona.ingest.feeds import FeedConfig, generate_feeds
    from sona.ingest.pipeline import IngestPipeline, load_resolver
    from sona.ingest.resolution import ResolverConfig

    feeds = generate_feeds(ml100k.catalog, None, FeedConfig(n_movies=40, seed=3))
    store = CatalogStore(postgres_url)
    try:
        cfg = ResolverConfig(rules=("eidr", "external_id", "fuzzy_title"))
        report = IngestPipeline(store, load_resolver(store, cfg)).run(feeds.records)
        assert store.count() == report.n_created >= 40
        again = IngestPipeline(store, load_resolver(store, cfg)).run(feeds.records)
        assert again.n_created == 0 and again.decided_by == {"platform_id": len(feeds.records)}
    finally:
        store.close()
