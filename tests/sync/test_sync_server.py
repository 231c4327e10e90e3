"""Sync over a real ``bentoml serve`` (issue 15 item 3): three devices with random offline
edits converge after reconnecting and after a server restart; the WebSocket channel pushes
edits to the other devices; watchlist adds and progress reach the profile store; ``kill -9``
during a burst of pushes loses no acknowledged operation (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sona.db import sqlite_url
from sona.profile import ProfileStore
from sona.sync import SyncStore
from sona.sync.client import SyncClient
from tests.sync.live import Live, call, start, write_config

pytestmark = pytest.mark.slow

USER = "7"  # an ML-100K user: the profile events land on a known user
TITLES = ["50", "181", "172", "1", "98", "127"]  # Star Wars, Return of the Jedi, ...


def _client(live: Live, work: Path, device: str, user: str = USER) -> SyncClient:
    return SyncClient(live.url, user_id=user, device_id=device, api_key=live.write,
                      queue_path=work / f"{user}-{device}.db")


def _random_edit(client: SyncClient, rng: random.Random) -> None:
    title = rng.choice(TITLES)
    kind = rng.choice(["add", "add", "remove", "progress", "setting"])
    if kind == "add":
        client.add_to_watchlist(title)
    elif kind == "remove":
        client.remove_from_watchlist(title)
    elif kind == "progress":
        client.set_progress(title, rng.randint(0, 7200), 7200)
    else:
        client.set_setting(rng.choice(["subtitles", "autoplay"]),
                           rng.choice(["en", "fr", True, False]))


def _state(live: Live, user: str = USER) -> dict[str, Any]:
    status, body = call("GET", f"{live.url}/api/v1/sync/state?user_id={user}", key=live.read)
    assert status == 200, body
    return {k: body[k] for k in ("watchlist", "progress", "settings")}


def test_three_devices_converge_after_reconnect_and_restart(tmp_path: Path,
                                                            ml100k_models: Path) -> None:
    config = write_config(tmp_path / "serving.yaml", ml100k_models)
    live = start(config)
    rng = random.Random(15)
    devices = [_client(live, tmp_path, d) for d in ("phone", "tv", "laptop")]
    try:
        for c, kind in zip(devices, ("mobile", "tv", "desktop"), strict=True):
            assert c.register(device_type=kind)["active"] is True
        for _ in range(6):  # rounds: everyone edits offline, a random subset reconnects
            for c in devices:
                for _ in range(rng.randint(1, 5)):
                    _random_edit(c, rng)
            for c in rng.sample(devices, rng.randint(0, 2)):
                assert c.sync().online
        assert sum(len(c.pending()) for c in devices) > 0  # some edits are still offline
        for _ in range(2):  # reconnect: the second pass brings each the others' pushes
            for c in devices:
                report = c.sync()
                assert report.online and report.pending == 0
        server = _state(live)
        assert all(c.document.to_dict() == server for c in devices)
        assert server["watchlist"] or server["progress"]  # the edits did something

        # edits while the server is down stay queued, then replay after the restart
        live.proc.stop()
        for c in devices:
            for _ in range(3):
                _random_edit(c, rng)
            assert not c.sync().online and len(c.pending()) == 3
        live = Live(live.proc.start(), live.url, live.write, live.read)
        for _ in range(2):
            for c in devices:
                assert c.sync().online
        server = _state(live)
        assert all(c.document.to_dict() == server for c in devices)
        fresh = _client(live, tmp_path, "new-tablet")  # a new device pulls everything
        fresh.register(device_type="tablet")
        assert fresh.sync().pulled == SyncStore(sqlite_url(tmp_path / "sync.db")).count(USER)
        assert fresh.document.to_dict() == server
    finally:
        for c in devices:
            c.close()
        live.proc.stop()


def test_channel_pushes_to_other_devices_and_signals_reach_the_profile(
        tmp_path: Path, ml100k_models: Path) -> None:
    config = write_config(tmp_path / "serving.yaml", ml100k_models)
    live = start(config)
    phone, tv = _client(live, tmp_path, "phone", "3"), _client(live, tmp_path, "tv", "3")
    try:
        phone.register()
        tv.register(device_type="tv")
        got: list[dict[str, Any]] = []
        stop, connected = threading.Event(), threading.Event()
        listener = threading.Thread(target=tv.listen, args=(stop,),
                                    kwargs={"on_message": got.append, "connected": connected})
        listener.start()
        assert connected.wait(20)
        phone.add_to_watchlist("50")
        phone.set_progress("181", 2400, 8040)
        assert phone.sync().pushed == 2
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(m["type"] == "ops" for m in got):
            time.sleep(0.05)
        stop.set()
        listener.join(10)
        pushed = [o["key"] for m in got if m["type"] == "ops" for o in m["ops"]]
        assert pushed == ["50", "181"]
        assert tv.document.watchlist.elements() == ["50"]  # merged without a pull
        assert tv.cursor is None
        # the same event path as playback: stored viewing events of user 3
        events = ProfileStore(sqlite_url(tmp_path / "sona.db")).events("3")
        assert [(e.content_id, round(e.completion_rate, 4)) for e in events] == [
            ("50", 0.3), ("181", round(2400 / 8040, 4))]
        # bad input: 400 naming the field; a revoked device is refused
        status, body = call("POST", f"{live.url}/api/v1/sync/push", {
            "user_id": "3", "device_id": "phone", "ops": [{
                "op_id": "x", "device_id": "phone", "ts": phone.clock.now().encode(),
                "kind": "progress", "key": "50", "value": {"position_s": 1}}]}, live.write)
        assert status == 400 and body["fields"] == ["ops.0.progress.value.duration_s"]
        status, body = call("DELETE", f"{live.url}/api/v1/sync/devices/tv?user_id=3",
                            key=live.write)
        assert status == 200 and body["active"] is False
        status, body = call("GET", f"{live.url}/api/v1/sync/pull?user_id=3&device_id=tv",
                            key=live.read)
        assert status == 403 and body["error"] == "device_revoked"
        status, body = call("GET", f"{live.url}/api/v1/sync/devices?user_id=3", key=live.read)
        assert [(d["device_id"], d["active"]) for d in body["devices"]] == [
            ("phone", True), ("tv", False)]
        assert call("GET", f"{live.url}/api/v1/sync/devices?user_id=3")[0] == 401
    finally:
        phone.close()
        tv.close()
        live.proc.stop()


def _kill_mid_burst(tmp_path: Path, models: Path, sync_url: str | None) -> tuple[set[str],
                                                                                  set[str]]:
    overrides = {"sync": {"url": sync_url}} if sync_url else {}
    live = start(write_config(tmp_path / "serving.yaml", models, **overrides))
    acked: set[str] = set()
    lock, stop = threading.Lock(), threading.Event()
    clients = [_client(live, tmp_path, f"dev{i}", user=str(100 + i % 3)) for i in range(6)]
    for c in clients:
        c.register()

    def burst(c: SyncClient) -> None:
        rng = random.Random(c.device_id)
        while not stop.is_set():
            for _ in range(10):
                c.set_progress(rng.choice(TITLES), rng.randint(0, 100), 100)
            try:
                c.push(batch_size=10)
            except Exception:  # noqa: BLE001 - the server died under us: not acknowledged
                return
            done = c.acknowledged()
            with lock:
                acked.update(done)

    threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while len(acked) < 600 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = live.proc.proc
    assert proc is not None
    os.killpg(os.getpgid(proc.pid), signal.SIGKILL)  # kill -9 mid-burst
    stop.set()
    for th in threads:
        th.join(30)
    live.proc.stop()
    store = SyncStore(sync_url or sqlite_url(tmp_path / "sync.db"))
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        stored = {r[0] for r in conn.exec_driver_sql("SELECT op_id FROM sync_operations")}
    store.close()
    for c in clients:
        c.close()
    return acked, stored


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_acknowledged_operation(backend: str, tmp_path: Path,
                                                ml100k_models: Path,
                                                request: pytest.FixtureRequest) -> None:
    url = None if backend == "sqlite" else request.getfixturevalue("pg").create_database()
    acked, stored = _kill_mid_burst(tmp_path, ml100k_models, url)
    missing = acked - stored
    print(f"\n{backend}: acknowledged {len(acked)}, stored {len(stored)}, lost {len(missing)}")
    assert len(acked) >= 600
    assert not missing
