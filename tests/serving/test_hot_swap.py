"""Promotion through a real MLflow registry and hot swaps under concurrent load.

The champion alias is moved by ``promote_best`` (best run by ndcg_at_10), bundles are
written by ``export_version`` from the registry, and a real server swaps versions, by
polling the alias or on ``POST /admin/reload``, while client threads keep calling it:
every request must succeed and report one of the two versions.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serving_fixtures import FAST_EXPORT, MODEL_NAME, post, write_config

from sona.db import sqlite_url
from sona.experiments.spec import TrackingConfig
from sona.models.als import ALS, ALSConfig
from sona.models.base import Recommender
from sona.models.ease import EASE, EASEConfig
from sona.serving.audit import AuditLog
from sona.serving.auth import KeyStore
from sona.serving.process import ServerProcess
from sona.serving.promotion import ExportData, export_version, promote_best
from sona.testing.serving import ServingData

pytestmark = pytest.mark.slow  # MLflow + two servers: ~30 s on 2 busy cores

EXPERIMENT = "swap-exp"


@dataclass
class Registry:
    tracker: Any
    tracking: TrackingConfig
    models_dir: Path
    data: ExportData
    audit: AuditLog
    work: Path

    def log_run(self, model: Recommender[Any], name: str, ndcg: float) -> str:
        with self.tracker.run(EXPERIMENT, name) as run:
            run.log_metrics({"ndcg_at_10": ndcg})
            run.log_model(model)
            return str(run.run_id)

    def promote_and_export(self) -> int:
        done = promote_best(self.tracker, EXPERIMENT, "ndcg_at_10", MODEL_NAME,
                            audit=self.audit)
        export_version(self.tracker, MODEL_NAME, done.version, self.models_dir, self.data,
                       FAST_EXPORT)
        return done.version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, serving_data: ServingData) -> Registry:
    from sona.experiments.tracking import Tracker

    work = tmp_path_factory.mktemp("registry")
    tracking = TrackingConfig(uri=f"sqlite:///{work / 'mlflow.db'}",
                              artifact_dir=str(work / "artifacts"))
    reg = Registry(Tracker(tracking), tracking, work / "models",
                   ExportData(serving_data.catalog, serving_data.data),
                   AuditLog(sqlite_url(work / "sona.db")), work)
    data = serving_data.data
    reg.log_run(EASE(EASEConfig(l2=10.0)).fit(data), "ease", 0.30)
    reg.log_run(ALS(ALSConfig(n_factors=8, n_iter=2, n_threads=1)).fit(data), "als-small", 0.10)
    assert reg.promote_and_export() == 1
    return reg


def test_promotion_moves_alias_and_audits(registry: Registry, serving_data: ServingData) -> None:
    tracker = registry.tracker
    info = tracker.model_version_info(MODEL_NAME, 1)
    assert info["aliases"] == ["champion"]
    assert info["tags"]["sona.promotion_metric"] == "ndcg_at_10"
    assert "best ndcg_at_10=0.3000" in info["tags"]["sona.promotion_reason"]
    rows = registry.audit.query(action="model_promoted")
    assert rows[0].resource_id == f"{MODEL_NAME}/1" and rows[0].details["value"] == 0.3
    assert (registry.models_dir / MODEL_NAME / "1" / "manifest.json").exists()


@dataclass
class Load:
    """Client threads calling the server until stopped; records every outcome."""

    url: str
    outcomes: list[tuple[int, str | None]]
    stop: threading.Event
    threads: list[threading.Thread]

    @classmethod
    def start(cls, url: str, n_threads: int = 4) -> Load:
        load = cls(url, [], threading.Event(), [])
        lock = threading.Lock()

        def worker(i: int) -> None:
            n = 0
            while not load.stop.is_set():
                n += 1
                if n % 2:
                    status, body = post(f"{url}/api/v1/recommendations",
                                        {"user_id": 1000 + (i * 7 + n) % 100, "limit": 10})
                else:
                    status, body = post(f"{url}/api/v1/personalization/score",
                                        {"user_id": 1000 + n % 100, "content_id": 5000 + n % 50})
                version = body.get("model_version") if isinstance(body, dict) else None
                with lock:
                    load.outcomes.append((status, version))

        for i in range(n_threads):
            t = threading.Thread(target=worker, args=(i,), daemon=True)
            t.start()
            load.threads.append(t)
        return load

    def finish(self) -> Counter[tuple[int, str | None]]:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        return Counter(self.outcomes)

    def wait_for_version(self, version: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outcomes[-20:] and all(v == version for _, v in self.outcomes[-20:]):
                return
            time.sleep(0.1)
        raise AssertionError(f"server never switched to v{version}: {self.outcomes[-5:]}")


def _server(registry: Registry, name: str, poll_s: float,
            database: Path | None = None) -> ServerProcess:
    config = write_config(registry.work / f"{name}.yaml", registry.models_dir, version=None,
                          poll_interval_s=poll_s,
                          database=str(database or registry.work / "sona.db"),
                          tracking={"uri": registry.tracking.uri,
                                    "artifact_dir": registry.tracking.artifact_dir})
    return ServerProcess(config)


@pytest.fixture(scope="module")
def polling_server(registry: Registry) -> Iterator[ServerProcess]:
    with _server(registry, "polling", poll_s=0.3) as proc:
        yield proc


def test_hot_swap_on_alias_move_under_load(registry: Registry, serving_data: ServingData,
                                           polling_server: ServerProcess) -> None:
    load = Load.start(polling_server.url)
    load.wait_for_version("1")
    # a better run appears; promoting it moves the alias (v1 becomes "previous")
    registry.log_run(ALS(ALSConfig(n_factors=16, n_iter=5, n_threads=1)).fit(serving_data.data),
                     "als", 0.50)
    assert registry.promote_and_export() == 2
    assert registry.tracker.get_alias_version(MODEL_NAME, "previous") == 1
    load.wait_for_version("2")
    outcomes = load.finish()
    assert {status for status, _ in outcomes} == {200}, outcomes  # zero failed requests
    assert {version for _, version in outcomes} == {"1", "2"}
    assert sum(outcomes.values()) > 20


def test_admin_reload_swaps_under_load(registry: Registry, serving_data: ServingData,
                                       polling_server: ServerProcess) -> None:
    # a server that only swaps when told to (no polling), on the same registry; its own
    # serving database: servers on one database are one deployment (their workers follow
    # each other's swaps through sona.shared), so it would follow the polling one
    database = registry.work / "manual" / "sona.db"
    database.parent.mkdir(exist_ok=True)
    keys = KeyStore(sqlite_url(database))
    admin = keys.create(["admin"])[1]
    with _server(registry, "manual", poll_s=0, database=database) as proc:
        load = Load.start(proc.url)
        load.wait_for_version("2")  # started on the current champion
        registry.log_run(EASE(EASEConfig(l2=50.0)).fit(serving_data.data), "ease-2", 0.70)
        assert registry.promote_and_export() == 3
        time.sleep(1.0)
        assert all(v == "2" for _, v in load.outcomes[-10:])  # no polling: still v2
        status, body = post(f"{proc.url}/admin/reload", {}, headers={"X-API-Key": admin})
        assert status == 200 and body == {"status": "loading", "version": "3", "current": "2"}
        load.wait_for_version("3")
        outcomes = load.finish()
    assert {status for status, _ in outcomes} == {200}, outcomes
    assert {version for _, version in outcomes} == {"2", "3"}
    reloads = AuditLog(sqlite_url(database)).query(action="admin_action")
    assert reloads[0].details["version"] == "3" and reloads[0].user_id is not None
