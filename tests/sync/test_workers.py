"""The sync service with several workers: two SyncService instances over one SQLite store,
each with its own SharedState over one folder (as two BentoML worker processes), and a
cross-process run with real processes."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sona.shared import SharedState
from sona.sync import SyncError, SyncService, SyncStore
from tests.sync.ops import Clock, op

NOW = 1_700_000_000_000


class Workers:
    """Two workers' services, their shared states and (skewed) wall clocks."""

    def __init__(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'sync.db'}"
        self.shared = [SharedState(tmp_path / "shared", slots=256) for _ in range(2)]
        # worker b's wall clock is 5 s behind a's: its own clock alone would stamp lower
        self.clocks = [Clock(NOW), Clock(NOW - 5_000)]
        self.svc = [SyncService(SyncStore(url), physical=c, shared=s)
                    for c, s in zip(self.clocks, self.shared, strict=True)]

    def close(self) -> None:
        for svc in self.svc:
            svc.store.close()
        for shared in self.shared:
            shared.close()


@pytest.fixture()
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.close()


def test_alternating_workers_stamp_in_commit_order_and_pullers_miss_nothing(
        workers: Workers) -> None:
    a, b = workers.svc
    a.register_device("u1", "phone")
    b.register_device("u1", "tv")
    a.register_device("u1", "laptop")
    cursor: str | None = None
    pulled: list[str] = []
    pushed: list[str] = []
    for i in range(12):
        device = ("phone", "tv")[i % 2]
        worker = workers.svc[(i // 2) % 2]  # both devices through both workers
        new = op(device, NOW - 20_000 + i * 10, "progress", str(i % 3),
                 {"position_s": float(i), "duration_s": 100.0})
        result = worker.push("u1", device, [new])
        assert result.accepted == [new.op_id]
        pushed.append(new.op_id)
        if i % 3 == 2:  # the laptop pulls every few pushes, through alternating workers
            page = workers.svc[i % 2].pull("u1", "laptop", since=cursor)
            pulled += [o.op.op_id for o in page.ops]
            cursor = page.clock
    page = b.pull("u1", "laptop", since=cursor)
    pulled += [o.op.op_id for o in page.ops]
    assert pulled == pushed  # every op exactly once, in push order
    stamps = [o.server_ts for o in a.pull("u1", "laptop").ops]
    assert len(stamps) == 12 and stamps == sorted(set(stamps))  # strictly increasing
    assert [o.op.op_id for o in a.pull("u1", "laptop").ops] == pushed  # stamp order = commits


def test_a_push_through_one_worker_is_in_the_others_document_at_once(
        workers: Workers) -> None:
    a, b = workers.svc
    a.register_device("u1", "phone")
    assert b.document("u1").watchlist.elements() == []  # cached in b
    a.push("u1", "phone", [op("phone", NOW - 1_000, "watchlist_add", "50")])
    assert b.document("u1").watchlist.elements() == ["50"]
    b.push("u1", "phone", [op("phone", NOW - 900, "watchlist_add", "181")])
    assert a.document("u1").watchlist.elements() == ["181", "50"]
    assert b.document("u1").watchlist.elements() == ["181", "50"]
    assert a.document("u2").watchlist.elements() == []


def test_listeners_of_one_worker_get_the_other_workers_pushes_and_revocations(
        workers: Workers) -> None:
    a, b = workers.svc
    shared_a, shared_b = workers.shared
    for device in ("phone", "tv", "laptop"):
        a.register_device("u1", device)
    got: dict[str, list[dict[str, Any]]] = {"a-phone": [], "a-tv": [], "b-phone": [],
                                            "b-laptop": []}
    for name in got:
        worker = a if name.startswith("a-") else b
        worker.subscribe("u1", name[2:], got[name].append)
    first = op("phone", NOW - 2_000, "watchlist_add", "50")
    second = op("phone", NOW - 1_900, "progress", "50", {"position_s": 1.0,
                                                          "duration_s": 10.0})
    pushed = a.push("u1", "phone", [first, second])
    assert [o["op_id"] for m in got["a-tv"] for o in m["ops"]] == pushed.accepted
    assert got["b-laptop"] == []  # not yet relayed
    assert shared_b.poll() == 1
    assert shared_a.poll() == 0  # the pushing worker delivered it already, once
    assert got["b-laptop"] == got["a-tv"]  # the same message, rows re-read from the store
    assert got["b-laptop"][0]["clock"] == got["b-laptop"][0]["ops"][-1]["server_ts"]
    assert got["a-phone"] == got["b-phone"] == []  # never to the pushing device
    a.push("u1", "phone", [first])  # a duplicate: nothing new, nothing relayed
    assert shared_b.poll() == 0 and len(got["b-laptop"]) == 1
    # a revocation in a reaches the revoked device's channel in b, and only that one
    a.revoke_device("u1", "laptop")
    assert shared_b.poll() == 1
    assert got["b-laptop"][-1] == {"type": "revoked", "device_id": "laptop"}
    assert got["b-phone"] == [] and len(got["a-tv"]) == 1
    with pytest.raises(SyncError) as revoked:  # and b refuses it at once
        b.pull("u1", "laptop")
    assert revoked.value.status == 403
    # b's pushes come to a's listeners the same way (b's clock is behind: stamps still grow)
    b.register_device("u1", "laptop")  # re-registered through b: a accepts it at once
    later = b.push("u1", "laptop", [op("laptop", NOW - 1_000, "watchlist_add", "181")])
    assert shared_a.poll() == 1
    assert got["a-tv"][-1]["ops"][0]["op_id"] == later.accepted[0]
    assert got["a-tv"][-1]["clock"] > got["a-tv"][0]["clock"]
    assert got["b-laptop"][-1]["type"] == "revoked"  # not its own push


def test_two_workers_edit_for_one_assistant_device_without_clashing(
        workers: Workers) -> None:
    a, b = workers.svc
    workers.clocks[1].ms = NOW  # the same millisecond in both workers: the same stamp
    first = a.edit("u1", "assistant", "watchlist_add", "50")
    second = b.edit("u1", "assistant", "watchlist_add", "181")
    third = a.edit("u1", "assistant", "watchlist_add", "7")
    assert first.duplicates == second.duplicates == third.duplicates == []
    assert first.accepted[0] < second.accepted[0] < third.accepted[0]
    assert b.document("u1").watchlist.elements() == ["181", "50", "7"]
    removed = b.edit("u1", "assistant", "watchlist_remove", "50")
    assert removed.accepted and a.document("u1").watchlist.elements() == ["181", "7"]
    # another user's edits by the same device id do not depend on u1's
    assert a.edit("u2", "assistant", "watchlist_add", "50").accepted
    assert a.store.count() == 5


def _push_many(directory: str, url: str, worker: int, n: int, skew_ms: int) -> None:
    shared = SharedState(Path(directory) / "shared", slots=256)
    svc = SyncService(SyncStore(url), physical=lambda: NOW - skew_ms, shared=shared)
    device = f"dev{worker}"
    for i in range(n):
        svc.push("u1", device, [op(device, NOW - 30_000 + i, "progress", str(i % 4),
                                   {"position_s": float(i), "duration_s": 100.0})])
        svc.edit("u1", "assistant", "setting", "theme", f"{worker}-{i}")
    svc.store.close()
    shared.close()


def test_real_processes_commit_in_stamp_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    store = SyncStore(url)
    svc = SyncService(store)
    for worker in range(3):
        svc.register_device("u1", f"dev{worker}")
    svc.register_device("u1", "assistant", device_type="assistant")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_push_many, args=(str(tmp_path), url, w, 25, w * 3_000))
             for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with store.engine.connect() as conn:
        stamps = [r[0] for r in conn.execute(text(
            "SELECT server_ts FROM sync_operations ORDER BY seq"))]
    assert len(stamps) == 3 * 25 * 2  # no edit was dropped as a duplicate
    assert stamps == sorted(set(stamps))  # commit order is stamp order, across processes
    store.close()
