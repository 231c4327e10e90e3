"""Entity resolution of webhook events across worker processes (issue 12).

Each "worker" is the catalog wiring of :class:`~sona.serving.app.SonaApp` over one serving
folder: its own catalog store, resolver (loaded from the catalog), webhook service, catalog
relay and :class:`SharedState` on the same files, and a :class:`CatalogWrites` guard. Events
are queued in the shared catalog database; each worker processes the queue with its own
resolver. Nothing is polled: a worker learns the others' writes from the relay journal under
the catalog write lock, before it resolves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sona.ingest.webhooks import sign
from sona.serving.catalog_api import (
    CatalogHandler,
    CreateContentRequest,
    RegisterWebhookRequest,
)
from sona.serving.catalog_http import CatalogConfig, build_catalog_handler
from sona.serving.catalog_relay import CatalogRelay
from sona.serving.catalog_writes import CatalogWrites
from sona.shared import SharedState

SECRET = "0123456789abcdef-webhooks"


@dataclass
class Worker:
    shared: SharedState
    catalog: CatalogHandler
    relay: CatalogRelay

    def post(self, platform: str, event_type: str, **payload: Any) -> None:
        raw = json.dumps({"event_type": event_type, **payload}).encode()
        receipt = self.catalog.receive_webhook(platform, raw, sign(SECRET, raw))
        assert receipt.status == "queued"

    def process(self, limit: int = 100) -> dict[str, int]:
        return self.catalog.process_webhooks(limit)

    def close(self) -> None:
        self.relay.close()
        self.catalog.store.close()
        self.shared.close()


def start_worker(folder: Path) -> Worker:
    """One worker's catalog components, wired as SonaApp wires them."""
    shared = SharedState(folder, name="sona.db.shared")
    head = shared.head()  # before the resolver reads the catalog
    catalog = build_catalog_handler(CatalogConfig(encoder="none"), str(folder / "sona.db"))
    relay = CatalogRelay(shared, catalog.store, [])
    catalog.writes = CatalogWrites(shared, catalog.store, catalog.resolver, after=head)
    return Worker(shared, catalog, relay)


@pytest.fixture()
def pair(tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    a = start_worker(tmp_path)
    b = start_worker(tmp_path)
    for platform in ("netflix", "hulu"):
        a.catalog.register_webhook(RegisterWebhookRequest(platform=platform, secret=SECRET))
    try:
        yield a, b
    finally:
        b.close()
        a.close()


def netflix(title: str = "Fargo", countries: tuple[str, ...] = ("US",)) -> dict[str, Any]:
    return {"netflixId": 80100172, "title": title, "synopsis": "Snow and money.",
            "releaseYear": 1996, "runtime": 5880, "genres": ["Crime Movies"],
            "ids": {"imdb": "tt0116282"}, "countries": list(countries)}


def hulu(title: str = "Fargo", pid: str = "f4a1c0de-hulu", year: int = 1996) -> dict[str, Any]:
    return {"id": pid, "name": title, "premiere_date": f"{year}-03-08T00:00:00Z",
            "genre_names": ["Crime"], "tiers": ["ad-free"]}


def test_a_title_first_seen_by_one_worker_is_resolved_by_the_other(pair) -> None:
    a, b = pair
    a.post("netflix", "content_added", data=netflix())
    assert a.process() == {"completed": 1, "failed": 0, "dead_lettered": 0}
    (made,) = a.catalog.store.list_items()

    b.post("hulu", "content_added", data=hulu())  # no IMDb id: the title and year decide
    assert b.process()["completed"] == 1
    assert a.catalog.store.count() == 1  # no duplicate item
    item = b.catalog.store.get(made.canonical_id)
    assert item.source_platforms == ["netflix", "hulu"]

    # an update of A's listing processed by B keeps what both workers merged
    b.post("netflix", "content_updated", data=netflix(countries=("US", "GB")))
    assert b.process()["completed"] == 1
    a.post("hulu", "availability_changed", data=hulu())
    assert a.process()["completed"] == 1
    assert a.catalog.store.count() == 1
    item = a.catalog.store.get(made.canonical_id)
    assert item.source_platforms == ["netflix", "hulu"]
    assert {o.platform: o.regions for o in item.availability}["netflix"] == ["US", "GB"]


def test_an_admin_created_title_is_known_to_the_other_workers_resolver(pair) -> None:
    a, b = pair
    heat = a.catalog.create_content(CreateContentRequest(
        title="Heat", content_type="movie", platform="netflix", platform_content_id="n-1",
        release_year=1995))
    b.post("hulu", "content_added", data=hulu("Heat", "hulu-heat", 1995))
    assert b.process()["completed"] == 1
    assert b.catalog.store.count() == 1
    assert b.catalog.store.get(heat.id).source_platforms == ["netflix", "hulu"]


def test_concurrent_webhooks_on_both_workers_make_one_item(pair) -> None:
    a, b = pair
    a.post("netflix", "content_added", data=netflix())
    b.post("hulu", "content_added", data=hulu())
    start = threading.Barrier(2)
    done: dict[str, dict[str, int]] = {}

    def process(name: str, worker: Worker) -> None:
        start.wait()
        done[name] = worker.process(limit=1)  # one event each

    threads = [threading.Thread(target=process, args=(n, w)) for n, w in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done["a"]["completed"] == done["b"]["completed"] == 1
    (item,) = a.catalog.store.list_items()
    assert item.source_platforms == ["netflix", "hulu"]


def test_a_title_deleted_on_one_worker_is_forgotten_by_the_other(pair) -> None:
    a, b = pair
    heat = a.catalog.create_content(CreateContentRequest(
        title="Heat", content_type="movie", platform="netflix", platform_content_id="n-1",
        release_year=1995))
    b.post("hulu", "content_added", data=hulu("Heat", "hulu-heat", 1995))
    assert b.process()["completed"] == 1 and heat.id in b.catalog.resolver.entities
    a.catalog.delete_content(heat.id)
    b.post("hulu", "content_updated", data=hulu("Heat", "hulu-heat-2", 1995))
    assert b.process()["completed"] == 1
    (item,) = b.catalog.store.list_items()  # a new item: the deleted one stays deleted
    assert item.canonical_id != heat.id and heat.id not in b.catalog.resolver.entities


def test_pruned_relay_messages_make_a_worker_re_read_the_catalog(pair) -> None:
    a, b = pair
    a.post("netflix", "content_added", data=netflix())
    a.process()
    path = a.shared.directory / f"{a.shared.name}.relay.db"
    with sqlite3.connect(path) as conn:  # what pruning does to messages older than 10 min
        conn.execute("DELETE FROM relay")
    writes = b.catalog.writes
    assert isinstance(writes, CatalogWrites)
    with writes.shared.lock("catalog-writes"):
        assert writes.catch_up() == -1  # the whole catalog
        assert writes.catch_up() == 0
    b.post("hulu", "content_added", data=hulu())
    assert b.process()["completed"] == 1 and b.catalog.store.count() == 1
