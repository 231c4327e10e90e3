"""Experiments over a real ``bentoml serve``: REST routes with API-key scopes, serving and
events over HTTP, and durability: N concurrent events give exactly N rows, and after
``kill -9`` of the server mid-load the database opens consistent with every acknowledged
event stored (SQLite WAL, and PostgreSQL when a throwaway server can start)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serving_fixtures import Bundles, call, write_config

from sona.ab.repository import ExperimentRepository
from sona.db import sqlite_url
from sona.serving.auth import KeyStore
from sona.serving.process import ServerProcess
from sona.testing.postgres import PostgresServer, PostgresUnavailable, postgres_server

pytestmark = pytest.mark.slow


@dataclass
class Live:
    proc: ServerProcess
    url: str
    admin: str
    read: str
    db_url: str


def _start(work: Path, models_dir: Path, db_url: str) -> Live:
    config = write_config(work / "serving.yaml", models_dir, experiments={"url": db_url})
    keys = KeyStore(sqlite_url(work / "sona.db"))
    admin, read = keys.create(["admin"])[1], keys.create(["read"])[1]
    proc = ServerProcess(config).start()
    return Live(proc, proc.url, admin, read, db_url)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("ab-server")
    server = _start(work, bundles.models_dir, f"sqlite:///{work / 'experiments.db'}")
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")


ARMS = [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5,
                                             "config": {"mmr_lambda": 0.5}}]


def _experiment(live: Live, name: str) -> str:
    status, out = call("POST", f"{live.url}/api/v1/experiments",
                       {"name": name, "variants": ARMS}, live.admin)
    assert status == 200, out
    status, out2 = call("PUT", f"{live.url}/api/v1/experiments/{out['experiment_id']}/status",
                        {"status": "running"}, live.admin)
    assert status == 200, out2
    return str(out["experiment_id"])


def test_rest_routes_and_scopes(live: Live) -> None:
    base = f"{live.url}/api/v1/experiments"
    assert call("POST", base, {"name": "r", "variants": ARMS})[0] == 401
    assert call("POST", base, {"name": "r", "variants": ARMS}, live.read)[0] == 403
    status, body = call("POST", base, {"name": "r", "variants": ARMS[:1]}, live.admin)
    assert status == 400 and body["error"] == "validation_error" and "variants" in body["fields"]
    status, body = call("POST", base, {"name": "r", "variants": ARMS}, live.admin)
    assert status == 200 and body["status"] == "draft" and body["variants"] == 2
    exp_id = body["experiment_id"]
    status, listed = call("GET", base, key=live.admin)
    assert status == 200 and exp_id in [e["id"] for e in listed["experiments"]]
    assert call("GET", base, key=live.read)[0] == 403
    status, one = call("GET", f"{base}/{exp_id}", key=live.admin)
    assert status == 200 and one["name"] == "r" and one["started_at"] is None
    assert call("GET", f"{base}/nope", key=live.admin)[0] == 404
    status, patched = call("PATCH", f"{base}/{exp_id}", {"traffic_allocation": 0.5}, live.admin)
    assert status == 200 and patched["traffic_allocation"] == 0.5
    status, body = call("PATCH", f"{base}/{exp_id}", {"traffic": 0.5}, live.admin)
    assert status == 400 and body["fields"] == ["traffic"]
    status, body = call("PUT", f"{base}/{exp_id}/status", {"status": "shipped"}, live.admin)
    assert status == 400 and body["valid_statuses"][0] == "draft"
    assert call("DELETE", f"{base}/{exp_id}", key=live.admin) == (
        200, {"experiment_id": exp_id, "deleted": True})
    assert call("GET", f"{base}/{exp_id}", key=live.admin)[0] == 404


def test_recommendations_and_events_over_http(live: Live) -> None:
    exp_id = _experiment(live, "http")
    status, rec = call("POST", f"{live.url}/api/v1/recommendations",
                       {"user_id": "1000", "limit": 4})
    assert status == 200 and rec["experiment_id"] == exp_id and rec["exposure_id"]
    tag = rec["recommendations"][0]["experiment_variant"]
    assert tag in ("http:control", "http:treatment")
    events = {"events": [{"event_id": "h1", "user_id": "1000", "metric": "click",
                          "exposure_id": rec["exposure_id"], "position": 0,
                          "item_id": rec["recommendations"][0]["content_id"]}]}
    assert call("POST", f"{live.url}/api/v1/events", events)[0] == 401
    status, out = call("POST", f"{live.url}/api/v1/events", events, live.admin)
    assert status == 200 and out["recorded"] == 1 and out["results"][0]["variant"] == \
        tag.split(":")[1]
    status, metrics = call("GET", f"{live.url}/api/v1/experiments/{exp_id}/metrics",
                           key=live.read)
    assert status == 200
    assert sum(v["exposures"] for v in metrics["variant_metrics"].values()) == 1
    status, report = call("GET", f"{live.url}/api/v1/experiments/{exp_id}/report",
                          key=live.read)
    assert status == 200 and report["metric"] == "click"
    call("PUT", f"{live.url}/api/v1/experiments/{exp_id}/status", {"status": "completed"},
         live.admin)


def _post_events(url: str, key: str, ids: list[str], user: str) -> list[str]:
    """Post one batch; returns the ids the server acknowledged (200 with a status)."""
    body = {"events": [{"event_id": i, "user_id": user, "metric": "click"} for i in ids]}
    status, out = call("POST", f"{url}/api/v1/events", body, key)
    assert status == 200, out
    return [r["event_id"] for r in out["results"] if r["status"] in ("recorded", "duplicate")]


def test_concurrent_events_give_exactly_n_rows(live: Live) -> None:
    exp_id = _experiment(live, "concurrent")
    users = [str(1000 + i) for i in range(8)]
    for u in users:
        call("POST", f"{live.url}/api/v1/recommendations", {"user_id": u, "limit": 2})
    n, size = 400, 5
    batches = [[f"cc-{i + j}" for j in range(size)] for i in range(0, n, size)]
    with ThreadPoolExecutor(16) as pool:
        acked = sum(len(a) for a in pool.map(
            lambda b: _post_events(live.url, live.admin, b[1], users[b[0] % 8]),
            enumerate(batches)))
        again = list(pool.map(lambda b: _post_events(live.url, live.admin, b, users[0]),
                              batches))
    repo = ExperimentRepository(live.db_url)
    assert acked == n and sum(len(a) for a in again) == n
    assert repo.count_outcomes(exp_id) == n
    repo.close()


def _kill_mid_load(work: Path, bundles: Bundles, db_url: str, *, restart: bool,
                   min_acked: int = 300) -> dict[str, Any]:
    server = _start(work, bundles.models_dir, db_url)
    _experiment(server, "crash")
    users = [str(1000 + i) for i in range(8)]
    tags = [call("POST", f"{server.url}/api/v1/recommendations", {"user_id": u, "limit": 2})[1]
            ["recommendations"][0]["experiment_variant"] for u in users]
    tag = tags[0]
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def load(worker: int) -> None:
        k = 0
        while not stop.is_set():
            ids = [f"k{worker}-{k}-{j}" for j in range(10)]
            k += 1
            try:
                got = _post_events(server.url, server.admin, ids, users[worker % 8])
            except (OSError, AssertionError):
                return  # the server died under us: that batch was never acknowledged
            with lock:
                acked.extend(got)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60 + min_acked / 20
    while len(acked) < min_acked and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = server.proc.proc
    assert proc is not None
    os.killpg(os.getpgid(proc.pid), signal.SIGKILL)  # kill -9, mid-load
    stop.set()
    for th in threads:
        th.join(timeout=60)
    server.proc.stop()
    repo = ExperimentRepository(db_url)  # opens (and recovers) the database
    with repo.engine.connect() as conn:
        if repo.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        stored = {r[0] for r in conn.exec_driver_sql("SELECT event_id FROM ab_outcomes")}
    repo.close()
    if restart:  # the restarted server serves the same sticky variant
        restarted = _start(work, bundles.models_dir, db_url)
        status, rec = call("POST", f"{restarted.url}/api/v1/recommendations",
                           {"user_id": users[0], "limit": 2})
        restarted.proc.stop()
        assert status == 200 and rec["recommendations"][0]["experiment_variant"] == tag
    return {"acked": set(acked), "stored": stored}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_acknowledged_event(backend: str, tmp_path: Path, bundles: Bundles,
                                            request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'experiments.db'}"
    else:
        db_url = request.getfixturevalue("pg").create_database()
    found = _kill_mid_load(tmp_path, bundles, db_url, restart=backend == "sqlite")
    missing = found["acked"] - found["stored"]
    print(f"\n{backend}: acknowledged {len(found['acked'])}, stored {len(found['stored'])}, "
          f"lost {len(missing)}")
    assert len(found["acked"]) >= 300
    assert not missing
    assert len(found["stored"]) >= len(found["acked"])
