"""A real BentoML server with two worker processes answers as one (issue 12).

Every request below opens a new connection (urllib), sent 8 at a time, so the kernel hands
them to either worker (one at a time, the worker that just answered takes the next one);
``/health`` names the answering worker's pid, which shows both answer. What one
worker writes must be what the other serves next, with no TTL to wait out: a profile
update changes the lists of every following request, a model reload through one worker
swaps the version in both, a title created through the admin API is found by every search
and gone from every search after DELETE, and a WebSocket held by one worker gets the sync
pushes that any worker stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serving_fixtures import Bundles, call, get, post, write_config

from sona.db import sqlite_url
from sona.serving.auth import KeyStore
from sona.serving.process import ServerProcess
from sona.sync.client import SyncClient

pytestmark = pytest.mark.slow

NOW = 1_700_000_000
#: fresh connections per check: with two workers, both answer some of them
ROUNDS = 24


@dataclass(frozen=True)
class Served:
    url: str
    admin_key: str
    write_key: str
    work: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("workers")
    config = write_config(work / "serving.yaml", bundles.models_dir, version="3", workers=2)
    keys = KeyStore(sqlite_url(work / "sona.db"))
    admin = keys.create(["admin"], name="test-admin")[1]
    write = keys.create(["write"], name="test-write")[1]
    with ServerProcess(config) as proc:
        # ServerProcess waits for one ready worker; the tests need both answering
        assert len(_workers_seen(proc.url)) == 2
        yield Served(proc.url, admin, write, work)


def _parallel(n: int, call: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def _workers_seen(url: str, seconds: float = 120.0) -> set[int]:
    """The pids answering ``/health`` (the second worker may still be starting)."""
    seen: set[int] = set()

    def health() -> int:
        status, body = get(f"{url}/health")
        assert status == 200, body
        return int(body["worker"])

    deadline = time.monotonic() + seconds
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.update(_parallel(32, health))
    return seen


def _within(seconds: float, check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _lists(url: str, user: str) -> list[tuple[Any, ...]]:
    def one() -> tuple[Any, ...]:
        status, body = post(f"{url}/api/v1/recommendations", {"user_id": user, "limit": 10})
        assert status == 200, body
        return tuple(r["content_id"] for r in body["recommendations"])

    return _parallel(ROUNDS, one)


def test_two_workers_answer(served: Served) -> None:
    assert len(_workers_seen(served.url)) == 2


def test_a_profile_update_reaches_every_worker_at_once(served: Served) -> None:
    user = "two-worker-viewer"
    before = _lists(served.url, user)  # cached by both workers
    assert len(set(before)) == 1
    watched = [5001, 5002, 5003, 5004, 5005, 5006]
    status, body = post(f"{served.url}/api/v1/profile/update", {
        "user_id": user, "viewing_events": [
            {"content_id": item, "timestamp": NOW + i, "completion_rate": 0.9}
            for i, item in enumerate(watched)]},
        headers={"X-API-Key": served.write_key})
    assert status == 200 and body["events_processed"] == len(watched), body
    after = _lists(served.url, user)
    assert len(set(after)) == 1, "the workers disagree: one served a stale state"
    assert after[0] != before[0]
    assert not set(after[0]) & set(watched)


def test_a_reload_through_one_worker_swaps_both(served: Served) -> None:
    status, out = post(f"{served.url}/admin/reload", {"version": "2"},
                       headers={"X-API-Key": served.admin_key})
    assert status == 200 and out["status"] in {"loading", "loaded"}, out

    def both_on(version: str) -> bool:
        bodies = _parallel(ROUNDS, lambda: get(f"{served.url}/health")[1])
        return {b["model"]["version"] for b in bodies} == {version}

    assert _within(10.0, lambda: both_on("2"))
    status, out = post(f"{served.url}/admin/reload", {"version": "3"},
                       headers={"X-API-Key": served.admin_key})
    assert status == 200, out
    assert _within(10.0, lambda: both_on("3"))


def _found(url: str, query: str) -> list[list[str]]:
    def one() -> list[str]:
        status, body = post(f"{url}/api/v1/search", {"query": query, "page_size": 5})
        assert status == 200, body
        return [r["content"]["id"] for r in body["results"]]

    return _parallel(ROUNDS, one)


def test_a_catalog_write_reaches_every_workers_search(served: Served) -> None:
    status, made = call("POST", served.url + "/api/v1/admin/catalog/content", {
        "title": "Vortigaunt Lanterns of Esker Bay", "content_type": "movie",
        "platform": "netflix", "platform_content_id": "mw-1",
        "overview": "Two lighthouse keepers trade a lantern across time.",
        "release_year": 2022, "genres": ["Drama"]}, served.admin_key)
    assert status == 201, made
    new_id = made["id"]
    query = "vortigaunt lanterns esker"
    assert _within(10.0, lambda: all(ids[:1] == [new_id] for ids in _found(served.url, query)))
    status, _ = call("DELETE", f"{served.url}/api/v1/admin/catalog/content/{new_id}",
                     key=served.admin_key)
    assert status == 200
    assert _within(10.0, lambda: all(new_id not in ids for ids in _found(served.url, query)))


def test_a_websocket_on_one_worker_gets_pushes_stored_by_any(served: Served) -> None:
    user = "mw-sync"
    tv = SyncClient(served.url, user_id=user, device_id="tv", api_key=served.write_key,
                    queue_path=served.work / "tv.db")
    tv.register(device_type="tv")
    got: list[dict[str, Any]] = []
    stop, connected = threading.Event(), threading.Event()
    listener = threading.Thread(target=tv.listen, args=(stop,),
                                kwargs={"on_message": got.append, "connected": connected})
    listener.start()
    phones = []
    try:
        assert connected.wait(20)
        # one client (one connection) per phone: the kernel spreads them over both workers
        for i in range(10):
            phone = SyncClient(served.url, user_id=user, device_id=f"phone{i}",
                               api_key=served.write_key, queue_path=served.work / f"p{i}.db")
            phones.append(phone)
            phone.register()
            phone.add_to_watchlist(str(5100 + i))
            assert phone.sync().pushed == 1

        def keys() -> set[str]:
            return {o["key"] for m in got if m["type"] == "ops" for o in m["ops"]}

        assert _within(10.0, lambda: len(keys()) == 10), sorted(keys())
        assert keys() == {str(5100 + i) for i in range(10)}
    finally:
        stop.set()
        listener.join(10)
        tv.close()
        for phone in phones:
            phone.close()
