"""The sync service in process over SQLite and PostgreSQL: devices, push/pull-since-clock,
duplicates, validation, fan-out, restart, and the viewing events it emits."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.profile import ViewingEvent
from sona.sync import SyncConfig, SyncError, SyncService, SyncStore
from tests.sync.ops import Clock, op


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sync.db'}"
    return str(request.getfixturevalue("pg").create_database())


def test_push_pull_since_clock_and_duplicates(url: str) -> None:
    now = Clock(1_700_000_000_000)
    signals: list[tuple[str, list[ViewingEvent]]] = []
    svc = SyncService(SyncStore(url), physical=now,
                      signals=lambda u, ev: signals.append((u, ev)))
    svc.register_device("u1", "phone", device_type="mobile")
    svc.register_device("u1", "tv", device_type="tv")
    add = op("phone", now.ms - 5_000, "watchlist_add", "50")
    prog = op("phone", now.ms - 4_000, "progress", "50", {"position_s": 3000.0,
                                                           "duration_s": 7500.0})
    first = svc.push("u1", "phone", [add, prog])
    assert first.accepted == [add.op_id, prog.op_id] and first.duplicates == []
    again = svc.push("u1", "phone", [add, prog, add])  # a replayed queue
    assert again.accepted == [] and again.duplicates == [add.op_id, prog.op_id, add.op_id]
    pulled = svc.pull("u1", "tv")
    assert [o.op.op_id for o in pulled.ops] == [add.op_id, prog.op_id] and not pulled.more
    # an edit made offline long ago (an older stamp) still reaches a device that synced since
    old = op("tv", now.ms - 3_600_000, "setting", "subtitles", "en")
    svc.push("u1", "tv", [old])
    later = svc.pull("u1", "phone", since=pulled.clock)
    assert [o.op.op_id for o in later.ops] == [old.op_id]
    assert svc.store.count("u1") == 3
    # signals: the add (completion 0.3) and the progress (3000 / 7500 = 0.4), once each
    assert [(u, [(e.content_id, e.completion_rate) for e in ev]) for u, ev in signals] == [
        ("u1", [("50", 0.3), ("50", 0.4)])]
    doc = svc.document("u1").to_dict()
    assert doc["watchlist"] == ["50"] and doc["settings"]["subtitles"]["value"] == "en"
    svc.store.close()


def test_stale_progress_loses_and_emits_no_signal(url: str) -> None:
    now = Clock(1_700_000_000_000)
    signals: list[ViewingEvent] = []
    svc = SyncService(SyncStore(url), physical=now, signals=lambda u, ev: signals.extend(ev))
    for device in ("phone", "tv"):
        svc.register_device("u1", device)
    value = {"position_s": 100.0, "duration_s": 1000.0}
    svc.push("u1", "tv", [op("tv", now.ms - 1_000, "progress", "7", {**value,
                                                                       "position_s": 900.0})])
    svc.push("u1", "phone", [op("phone", now.ms - 2_000, "progress", "7", value)])
    assert svc.document("u1").progress["7"].value["position_s"] == 900.0
    assert [e.completion_rate for e in signals] == [0.9]


def test_validation_errors_name_the_field(url: str) -> None:
    now = Clock(1_700_000_000_000)
    svc = SyncService(SyncStore(url), SyncConfig(max_drift_s=60), physical=now)
    svc.register_device("u1", "phone")
    with pytest.raises(SyncError) as unknown:
        svc.push("u1", "laptop", [op("laptop", now.ms, "watchlist_add", "1")])
    assert unknown.value.status == 404 and unknown.value.fields == ["device_id"]
    with pytest.raises(SyncError) as other:
        svc.push("u1", "phone", [op("tv", now.ms, "watchlist_add", "1")])
    assert other.value.status == 400 and other.value.fields == ["ops.0.device_id"]
    with pytest.raises(SyncError) as drift:
        svc.push("u1", "phone", [op("phone", now.ms + 61_000, "watchlist_add", "1")])
    assert drift.value.code == "clock_drift" and drift.value.fields == ["ops.0.ts"]
    svc.revoke_device("u1", "phone")
    with pytest.raises(SyncError) as revoked:
        svc.pull("u1", "phone")
    assert revoked.value.status == 403
    assert [d.active for d in svc.devices("u1")] == [False]
    assert svc.store.count() == 0


def test_fan_out_reaches_other_devices_only(url: str) -> None:
    svc = SyncService(SyncStore(url))
    for device in ("phone", "tv", "laptop"):
        svc.register_device("u1", device)
    got: dict[str, list[str]] = {"phone": [], "tv": [], "laptop": []}
    stops = [svc.subscribe("u1", d, lambda m, d=d: got[d].extend(  # type: ignore[misc]
        o["op_id"] for o in m.get("ops", []))) for d in got]
    edit = svc.edit("u1", "phone", "watchlist_add", "50")
    assert got == {"phone": [], "tv": edit.accepted, "laptop": edit.accepted}
    stops[1]()
    svc.edit("u1", "phone", "watchlist_remove", "50")
    assert len(got["tv"]) == 1 and len(got["laptop"]) == 2
    assert svc.document("u1").watchlist.elements() == []
    with pytest.raises(SyncError, match="not on the watchlist"):
        svc.edit("u1", "phone", "watchlist_remove", "50")


def test_restart_keeps_operations_and_clock(url: str) -> None:
    svc = SyncService(SyncStore(url))
    svc.register_device("u1", "assistant", device_type="assistant")
    first = svc.edit("u1", "assistant", "watchlist_add", "50")
    svc.store.close()
    restarted = SyncService(SyncStore(url), physical=lambda: 1_000)  # wall clock reset
    second = restarted.edit("u1", "assistant", "watchlist_add", "181")
    assert second.clock > first.clock  # the server clock continued, not restarted at 1 s
    assert second.accepted[0] > first.accepted[0]  # so did the device's
    assert restarted.document("u1").watchlist.elements() == ["181", "50"]
    restarted.store.close()
