"""Catalog changes reach every worker's search index, where to watch and pipeline (issue 12).

Two :class:`SonaApp` instances over one serving database behave like two worker processes
of one server: each has its own catalog store, search engine, availability index and served
pipeline over the shared SQLite files, and its own :class:`SharedState`. A write answered by
worker A reaches worker B once B's relay delivers it (``b.shared.poll()``, what B's tailer
thread does every few milliseconds) and B's catalog relay applied it
(``b.catalog_relay.wait()``); nothing of A's is called for B. B runs without its tailer
(``start=False`` plus a pinned load), so the test decides when it receives.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from serving_fixtures import Bundles, write_config

from sona.catalog import CatalogStore, ContentItem, ExternalIds, utcnow
from sona.db import sqlite_url
from sona.ingest.webhooks import sign
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.catalog_api import (
    AvailabilityRequest,
    CreateContentRequest,
    PatchContentRequest,
    RegisterWebhookRequest,
)
from sona.serving.catalog_relay import TOPIC
from sona.serving.schemas import RecommendationRequest
from sona.serving.search_api import SearchRequest

#: model item ids of the synthetic serving data, seeded into the catalog
SEEDS = [str(i) for i in range(5100, 5130)]


@dataclass
class Workers:
    a: SonaApp  # answers the writes (its tailer runs, as in a server)
    b: SonaApp  # receives them when the test polls


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[Workers]:
    work = tmp_path_factory.mktemp("relay")
    store = CatalogStore(sqlite_url(work / "catalog.db"))  # the apps' default catalog path
    store.put_many([ContentItem(canonical_id=i, title=f"Film {i}",
                                external_ids=ExternalIds(platform_ids={"netflix": f"8{i}"}))
                    for i in SEEDS])
    store.close()
    # no encoders to load: items carry no stored vectors, search embeds with TF-IDF
    config = load_serving_config(write_config(
        work / "serving.yaml", bundles.models_dir, version="3", catalog={"encoder": "none"},
        search={"warm_up": False, "encoder": "tfidf"}))
    a = SonaApp(config)
    b = SonaApp(config, start=False)
    try:
        b.store.load("3")
        yield Workers(a, b)
    finally:
        b.close()
        a.close()


def _received(b: SonaApp) -> int:
    """Deliver the relayed messages to ``b`` and wait until its relay applied them."""
    delivered = b.shared.poll()
    b.catalog_relay.wait()
    b.cold_items.wait()
    return delivered


def _found(app: SonaApp, query: str) -> list[str]:
    """Ids the keyword index (tantivy) finds (hybrid search ranks every document)."""
    out = app.search.handler.search_keyword(SearchRequest(query=query))
    return [r.content.id for r in out.results]


def _suggested(app: SonaApp, prefix: str) -> list[str]:
    out = app.search.handler.autocomplete(prefix)
    return [s.text for s in out.suggestions if s.type == "title"]


def test_an_item_created_on_one_worker_is_searchable_and_watchable_on_the_other(
        workers: Workers) -> None:
    a, b = workers.a, workers.b
    _received(b)
    created = a.catalog.create_content(CreateContentRequest(
        title="Zorblax Nebula Quest", content_type="movie", platform="netflix",
        platform_content_id="zq-1", overview="a comet courier crosses the zorblax nebula"))
    cid = created.id
    start = utcnow() - timedelta(days=1)
    a.catalog.put_availability(cid, AvailabilityRequest(
        platform="netflix", regions=["US"], subscription_required=True, available_from=start))
    assert cid in _found(a, "zorblax")  # the answering worker before its response
    assert cid not in _found(b, "zorblax") and cid not in b.where.index  # not delivered yet

    # store commits (create, availability) and the index update of the create
    assert _received(b) >= 3
    assert cid in _found(b, "zorblax") and "Zorblax Nebula Quest" in _suggested(b, "zorbl")
    top = b.search.handler.search(SearchRequest(query="zorblax nebula quest")).results[0]
    assert top.content.id == cid  # hybrid search: keyword and TF-IDF vector of the item
    watch = b.where.index.where_to_watch(cid, "US", utcnow())
    assert watch is not None and [o.platform for o in watch.offers] == ["netflix"]
    assert watch.offers[0].deep_link_url  # built from the platform id, as on A
    filtered = b.search.handler.search(SearchRequest(
        query="zorblax", filters={"platforms": ["netflix"]}))
    assert cid in [r.content.id for r in filtered.results]

    # an update re-indexes the new text on B; the old one is gone
    a.catalog.update_content(cid, PatchContentRequest(
        title="Quixotic Lantern Voyage", overview="a lantern keeper sails the night sea"))
    _received(b)
    assert cid in _found(b, "quixotic") and cid not in _found(b, "zorblax")
    assert "Zorblax Nebula Quest" not in _suggested(b, "zorbl")

    # a delete disappears from B's search and where to watch
    a.catalog.delete_content(cid)
    _received(b)
    assert cid not in _found(b, "quixotic") and cid not in b.where.index
    assert "Quixotic Lantern Voyage" not in _suggested(b, "quixo")
    assert b.where.index.where_to_watch(cid, "US", utcnow()) is None


def test_a_trained_item_deleted_on_one_worker_leaves_the_others_pipeline(
        workers: Workers) -> None:
    a, b = workers.a, workers.b
    _received(b)
    gone = SEEDS[3]
    model = b.store.current
    assert model.pipeline.delta() is None or int(gone) not in set(
        model.items.ids(model.pipeline.delta().removed).tolist())  # type: ignore[union-attr]
    a.catalog.delete_content(gone)
    a.cold_items.wait()
    assert b.store.current is model  # B serves its item space until it receives
    _received(b)
    delta = b.store.current.pipeline.delta()
    assert delta is not None and int(gone) in set(b.store.current.items.ids(delta.removed))
    listed = b.recs.recommendations(RecommendationRequest(user_id="stranger", limit=100))
    assert gone not in {str(r.content_id) for r in listed.recommendations}
    assert gone not in b.where.index and gone not in _found(b, f"film {gone}")


def test_relayed_changes_are_not_published_again(workers: Workers) -> None:
    a, b = workers.a, workers.b
    _received(b)
    count = _relay_rows(a)
    a.catalog.create_content(CreateContentRequest(
        title="Echo Free Film", content_type="movie", platform="hulu",
        platform_content_id="echo-1"))
    published = _relay_rows(a) - count
    assert published == 2  # A's store commit and its index update, once each
    _received(b)
    assert _relay_rows(a) - count == published  # B applied them without publishing


def test_a_webhook_on_one_worker_resolves_onto_a_title_created_on_the_other(
        workers: Workers) -> None:
    """B's resolver learns A's write under the catalog write lock (from the relay journal,
    nothing polled), so B's webhook for the same title adds no second item."""
    a, b = workers.a, workers.b
    secret = "0123456789abcdef-relay"
    b.catalog.register_webhook(RegisterWebhookRequest(platform="hulu", secret=secret))
    created = a.catalog.create_content(CreateContentRequest(
        title="Quasar Lighthouse Keepers", content_type="movie", platform="netflix",
        platform_content_id="ql-1", release_year=2011))
    count = a.catalog.store.count()
    raw = json.dumps({"event_type": "content_added", "data": {
        "id": "hulu-ql", "name": "Quasar Lighthouse Keepers",
        "premiere_date": "2011-05-01T00:00:00Z", "tiers": ["ad-free"]}}).encode()
    assert b.catalog.receive_webhook("hulu", raw, sign(secret, raw)).status == "queued"
    assert b.catalog.process_webhooks()["completed"] == 1
    assert b.catalog.store.count() == count
    assert b.catalog.store.get(created.id).source_platforms == ["netflix", "hulu"]
    _received(b)


def _relay_rows(app: SonaApp) -> int:
    """Catalog messages in the relay table (read-only, outside the apps' SharedState)."""
    path = app.shared.directory / f"{app.shared.name}.relay.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM relay WHERE topic = ?",
                                (TOPIC,)).fetchone()[0])


@pytest.mark.slow
def test_an_item_created_on_one_worker_becomes_a_cold_item_of_the_others_pipeline(
        tmp_path: Path) -> None:
    """The served pipeline of worker B gains A's new title (MiniLM text content, so the
    encoder loads: slow) and loses it after A deletes it; built from the components
    SonaApp wires, over one catalog database and two SharedStates."""
    from sona.pipeline import ContentConfig
    from sona.serving.catalog_api import CatalogHandler
    from sona.serving.catalog_items import CatalogItemsFollower
    from sona.serving.catalog_relay import CatalogRelay
    from sona.serving.export_onnx import export_model
    from sona.serving.model_store import ModelStore
    from sona.shared import SharedState
    from sona.testing.fixtures import random_interactions
    from tests.pipeline.test_pipeline import small

    pipeline = small(graph=None, weights={"collaborative": 0.6, "content_based": 0.4},
                     content=ContentConfig(source="text", cache_dir=None)).fit(
        random_interactions(seed=3))
    export_model(pipeline, tmp_path / "models" / "m" / "1", name="m", version=1)
    url = sqlite_url(tmp_path / "catalog.db")
    catalog_a, catalog_b = CatalogStore(url), CatalogStore(url)
    shared_a, shared_b = SharedState(tmp_path), SharedState(tmp_path)
    served = ModelStore(tmp_path / "models", "m")
    follower = CatalogItemsFollower(served, catalog_b)
    served.prepare = follower.prepare
    relay_a = CatalogRelay(shared_a, catalog_a, [])  # A's own listeners do not matter here
    relay_b = CatalogRelay(shared_b, catalog_b, [follower.apply])
    handler = CatalogHandler(catalog_a, on_index_update=relay_a.index_updated)
    try:
        model = served.load("1")
        created = handler.create_content(CreateContentRequest(
            title="Starship Courier", content_type="movie", platform="netflix",
            platform_content_id="sc-1", overview="a courier pilots a starship through war"))
        assert not _known(served, created.id)
        shared_b.poll()
        relay_b.wait()
        deadline = time.monotonic() + 120.0  # the follower embeds on its own thread
        while not _known(served, created.id) and time.monotonic() < deadline:
            follower.wait()
            time.sleep(0.05)
        assert _known(served, created.id) and served.current is not model
        delta = served.current.pipeline.delta()
        assert delta is not None and created.id in [str(i) for i in delta.ids]

        handler.delete_content(created.id)
        shared_b.poll()
        relay_b.wait()
        follower.wait()
        removed = served.current.pipeline.delta()
        assert removed is not None and int(
            served.current.items.numbers([created.id])[0]) in removed.removed.tolist()
    finally:
        relay_b.close()
        relay_a.close()
        follower.close()
        shared_b.close()
        shared_a.close()
        catalog_b.close()
        catalog_a.close()


def _known(served: Any, item_id: str) -> bool:
    pipeline = served.current.pipeline
    return bool(pipeline.items_.numbers([item_id], missing="negative")[0] >= 0)
