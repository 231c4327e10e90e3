from __future__ import annotations

from datetime import UTC, datetime

from sona.catalog import CatalogStore
from sona.ingest.pipeline import IngestPipeline, content_text, load_resolver
from sona.ingest.records import RawRecord
from sona.ingest.resolution import ResolverConfig

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def test_feed_batch_lands_in_catalog_with_index_update(tmp_path, feeds300, char_encoder):
    store = CatalogStore(f"sqlite:///{tmp_path}/catalog.db")
    updates = []
    broken = RawRecord(id="netflix:broken", platform="netflix", data={"netflixId": 1},
                       fetched_at=NOW)
    pipe = IngestPipeline(store, load_resolver(store, ResolverConfig(), encoder=char_encoder),
                          encoder=char_encoder, on_index_update=updates.append,
                          clock=lambda: NOW)
    report = pipe.run([*feeds300.records, broken], truth=feeds300.truth)
    assert report.n_raw == len(feeds300.records) + 1
    assert report.n_normalized == len(feeds300.records)
    assert report.failures == ["netflix:broken: netflix record 'netflix:broken': missing "
                               "required field (column 'title')"]
    assert report.resolution is not None and report.resolution.pairwise.f1 >= 0.99
    assert store.count() == report.n_entities == report.n_created
    assert 300 <= store.count() <= 304 and report.n_merged == 0
    (update,) = updates
    assert len(update.upsert_ids) == store.count() and update.vectors.shape == (store.count(), 512)
    item = store.get(update.upsert_ids[0])
    assert item.embedding_model == "char3-hash" and item.data_quality_score > 0.5
    assert update.payloads[0]["title"] == item.title
    # every record's platform id is mapped to its entity
    mapped = {(t, e) for e, t, _, _ in store.mappings() if t.startswith("platform:")}
    assert len(mapped) == len(feeds300.records)
    # a second run over (part of) the same feeds updates the same entities
    again = IngestPipeline(store, load_resolver(store, ResolverConfig(), encoder=char_encoder),
                           encoder=char_encoder, clock=lambda: NOW)
    rerun = again.run(feeds300.records[:150])
    assert rerun.n_created == 0 and rerun.n_updated == rerun.n_entities > 100
    assert rerun.decided_by == {"platform_id": 150}
    assert store.count() == report.n_entities


def test_merged_items_vote_across_platforms(tmp_path, feeds300, records300):
    store = CatalogStore(f"sqlite:///{tmp_path}/c.db")
    IngestPipeline(store, load_resolver(store, ResolverConfig(rules=("eidr", "external_id",
                                                                      "fuzzy_title"))),
                   clock=lambda: NOW).run(feeds300.records)
    works = feeds300.works
    by_imdb = {w.imdb_id: w for w in works.values()}
    items = [i for i in store.iter_items() if len(i.source_platforms) >= 4]
    assert items
    agree = sum(1 for i in items if i.external_ids.imdb_id in by_imdb
                and by_imdb[i.external_ids.imdb_id].year == i.release_year)
    assert agree / len(items) > 0.95  # majority vote undoes year-off-by-one quirks
    assert all(not i.title.isupper() for i in items)
    assert all(len(i.availability) >= len(i.source_platforms) for i in items)
    assert content_text(items[0]).startswith(items[0].title)
