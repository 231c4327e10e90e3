"""Atomic promotion (issue 10, item 5): the bundle is published before the alias moves.

Real MLflow sqlite registry in ``tmp_path``, small real models, real ONNX export (TorchScript
exporter, genre content vectors). The only fake is the injected export fault.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_fixtures import FAST_EXPORT, MODEL_NAME
from typer.testing import CliRunner

from sona import io
from sona.db import sqlite_url
from sona.errors import ConfigError
from sona.experiments.spec import TrackingConfig
from sona.experiments.tracking import Tracker
from sona.models.als import ALS, ALSConfig
from sona.models.base import Recommender
from sona.models.ease import EASE, EASEConfig
from sona.models.graph_walk import GraphWalk, GraphWalkConfig
from sona.serving.audit import AuditLog
from sona.serving.model_store import ModelStore, registry_resolver
from sona.serving.promotion import (
    ExportData,
    ExportTarget,
    PromotionError,
    promote_best,
)
from sona.testing.serving import ServingData

pytestmark = pytest.mark.slow  # real registry + one ONNX export per promotion: ~10 s each

EXPERIMENT = "promo-exp"


@dataclass
class Registry:
    tracker: Tracker
    tracking: TrackingConfig
    target: ExportTarget
    audit: AuditLog

    def log_run(self, model: Recommender[Any], name: str, ndcg: float, label: str) -> str:
        with self.tracker.run(EXPERIMENT, name, tags={"sona.model": label}) as run:
            run.log_metrics({"ndcg_at_10": ndcg})
            run.log_model(model)
            return str(run.run_id)

    def promote(self) -> Any:
        return promote_best(self.tracker, EXPERIMENT, "ndcg_at_10", MODEL_NAME,
                            audit=self.audit, export=self.target)

    def champion(self) -> int | None:
        return self.tracker.get_alias_version(MODEL_NAME, "champion")

    def fresh_store(self) -> ModelStore:
        """A store as a newly started server builds it: follows the registry's champion."""
        return ModelStore(self.target.models_dir, MODEL_NAME,
                          resolver=registry_resolver(self.tracking, MODEL_NAME))


@pytest.fixture
def registry(tmp_path: Path, serving_data: ServingData) -> Registry:
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_dir=str(tmp_path / "artifacts"))
    target = ExportTarget(tmp_path / "models",
                          ExportData(serving_data.catalog, serving_data.data), FAST_EXPORT)
    return Registry(Tracker(tracking), tracking, target, AuditLog(sqlite_url(tmp_path / "sona.db")))


def _ease(serving_data: ServingData) -> EASE:
    return EASE(EASEConfig(l2=10.0)).fit(serving_data.data)


def _scores_of_served(store: ModelStore, users: np.ndarray) -> np.ndarray:
    pipeline = store.current.pipeline
    source = pipeline.model_sources()[0]
    scores, _ = source.scores(pipeline.states(pipeline.users_.ids(users)),
                              pipeline.graph(source.name))
    return np.asarray(scores)


def test_promote_exports_then_moves_the_alias(registry: Registry,
                                              serving_data: ServingData) -> None:
    ease = _ease(serving_data)
    run_id = registry.log_run(ease, "ease", 0.30, "ease")
    registry.log_run(ALS(ALSConfig(n_factors=8, n_iter=2, n_threads=1)).fit(serving_data.data),
                     "als-small", 0.10, "als")
    done = registry.promote()
    assert (done.version, done.run_id, done.previous, done.skipped) == (1, run_id, None, ())
    assert done.bundle == registry.target.models_dir / MODEL_NAME / "1"
    assert (done.bundle / "manifest.json").exists()
    assert registry.champion() == 1
    tags = registry.tracker.model_version_info(MODEL_NAME, 1)["tags"]
    assert tags["export_status"] == "exported" and tags["sona.promotion_value"] == "0.300000"
    [row] = registry.audit.query(action="model_promoted")
    assert row.resource_id == f"{MODEL_NAME}/1" and row.details["bundle"] == str(done.bundle)

    store = registry.fresh_store()
    assert store.reload(wait=True) == {"status": "loaded", "version": "1", "current": "1"}
    users = np.arange(5)
    np.testing.assert_allclose(_scores_of_served(store, users), ease._score_users(users),
                               atol=1e-5)


def _fail_export(monkeypatch: pytest.MonkeyPatch, model_class: type[Recommender[Any]]) -> None:
    """Fault injection: exporting a ``model_class`` model dies (disk full); others export."""
    import sona.serving.export_onnx as export_onnx

    real = export_onnx.export_model

    def disk_full(model: Recommender[Any], *args: Any, **kwargs: Any) -> Any:
        if isinstance(model, model_class):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(export_onnx, "export_model", disk_full)


def test_failed_export_leaves_the_champion_alone(registry: Registry, serving_data: ServingData,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ease = _ease(serving_data)
    registry.log_run(ease, "ease", 0.30, "ease")
    assert registry.promote().version == 1
    registry.log_run(ALS(ALSConfig(n_factors=16, n_iter=5, n_threads=1)).fit(serving_data.data),
                     "als", 0.50, "als")
    _fail_export(monkeypatch, ALS)
    with pytest.raises(PromotionError) as err:
        registry.promote()
    message = str(err.value)
    assert message == ("promotion failed: run als (model als) could not be exported as "
                       f"{MODEL_NAME} v2: OSError: [Errno 28] No space left on device; "
                       "champion stays v1")
    assert isinstance(err.value.__cause__, OSError)

    # the registry still names v1; v2 is registered but marked failed, with no bundle
    assert registry.champion() == 1
    assert registry.tracker.get_alias_version(MODEL_NAME, "previous") is None
    v2 = registry.tracker.model_version_info(MODEL_NAME, 2)
    assert v2["aliases"] == [] and v2["tags"]["export_status"] == "failed"
    assert "No space left on device" in v2["tags"]["export_error"]
    assert "sona.promoted_at" not in v2["tags"]
    assert sorted(p.name for p in (registry.target.models_dir / MODEL_NAME).iterdir()) == ["1"]
    assert [r.resource_id for r in registry.audit.query(action="model_promoted")] == [
        f"{MODEL_NAME}/1"]
    [failed] = registry.audit.query(action="model_promotion_failed")
    assert failed.resource_id == f"{MODEL_NAME}/2"

    # a server started now serves v1 and scores with it
    store = registry.fresh_store()
    assert store.reload(wait=True)["version"] == "1"
    users = np.arange(4)
    np.testing.assert_allclose(_scores_of_served(store, users), ease._score_users(users),
                               atol=1e-5)

    # once the fault is gone, the same run promotes as a new version
    monkeypatch.undo()
    done = registry.promote()
    assert (done.version, done.previous, registry.champion()) == (3, 1, 3)


def _graph_walk(serving_data: ServingData) -> GraphWalk:
    return GraphWalk(GraphWalkConfig(side_source=None)).fit(serving_data.data)


def test_non_exportable_best_run_is_skipped(registry: Registry, serving_data: ServingData,
                                            caplog: pytest.LogCaptureFixture) -> None:
    walk_id = registry.log_run(_graph_walk(serving_data), "walk", 0.90, "graph_walk")
    ease_id = registry.log_run(_ease(serving_data), "ease", 0.30, "ease")
    with caplog.at_level("WARNING", logger="sona.serving.promotion"):
        done = registry.promote()
    assert (done.run_id, done.version, registry.champion()) == (ease_id, 2, 2)
    assert (done.bundle / "manifest.json").exists() and done.value == pytest.approx(0.30)
    [skip] = done.skipped
    assert (skip.run_id, skip.model, skip.version) == (walk_id, "graph_walk", 1)
    line = skip.describe()
    assert line.startswith("skipping run walk (model graph_walk): GraphWalk cannot be exported")
    assert line in caplog.text
    assert "skipped better runs that cannot be exported: walk (graph_walk)" in done.reason
    v1 = registry.tracker.model_version_info(MODEL_NAME, 1)
    assert v1["aliases"] == [] and v1["tags"]["export_status"] == "not_exportable"
    assert not (registry.target.models_dir / MODEL_NAME / "1").exists()


def test_no_exportable_run_is_a_precise_error(registry: Registry,
                                              serving_data: ServingData) -> None:
    registry.log_run(_graph_walk(serving_data), "walk", 0.90, "graph_walk")
    with pytest.raises(ConfigError, match=r"no run of experiment 'promo-exp' with metric "
                       r"'ndcg_at_10' can be exported: skipping run walk \(model graph_walk\)"):
        registry.promote()
    assert registry.champion() is None


# --- the CLI: same guarantees, one line and exit 2 on failure ---------------------------


def _cli_setup(tmp_path: Path, registry: Registry, serving_data: ServingData) -> list[str]:
    config = tmp_path / "serving.yaml"
    io.write_yaml(config, {
        "model_name": MODEL_NAME, "models_dir": str(registry.target.models_dir),
        "database": str(tmp_path / "sona.db"),
        "tracking": {"uri": registry.tracking.uri,
                     "artifact_dir": registry.tracking.artifact_dir}})
    catalog = serving_data.catalog.frame.assign(genres=lambda f: f["genres"].map("|".join))
    catalog_file = tmp_path / "catalog.csv"
    pd.DataFrame(catalog).to_csv(catalog_file, index=False)
    # a plain model is served as a pipeline built from the log it was fitted on
    log_file = tmp_path / "interactions.csv"
    frame = serving_data.data.frame
    frame[[c for c in ("user_id", "item_id", "rating", "timestamp", "weight")
           if c in frame.columns]].to_csv(log_file, index=False)
    return ["promote", "--experiment", EXPERIMENT, "--config", str(config),
            "--content", "genres", "--exporter", "torchscript", "--catalog", str(catalog_file),
            "--interactions", str(log_file)]


def test_cli_prints_skips_and_failures(tmp_path: Path, registry: Registry,
                                       serving_data: ServingData, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from sona.cli import _register, app, main

    _register()
    args = _cli_setup(tmp_path, registry, serving_data)
    registry.log_run(_graph_walk(serving_data), "walk", 0.90, "graph_walk")
    registry.log_run(_ease(serving_data), "ease", 0.30, "ease")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("skipping run walk (model graph_walk): GraphWalk cannot be")
    assert lines[1] == (f"exported {MODEL_NAME} v2 to "
                        f"{registry.target.models_dir / MODEL_NAME / '2'}")
    assert lines[2].startswith(f"champion: {MODEL_NAME} v2 (run ease, ndcg_at_10=0.3000)")

    registry.log_run(ALS(ALSConfig(n_factors=8, n_iter=2, n_threads=1)).fit(serving_data.data),
                     "als", 0.50, "als")
    _fail_export(monkeypatch, ALS)
    monkeypatch.setattr(sys, "argv", ["sona", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert "champion:" not in out
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert error_lines == [
        "error: promotion failed: run als (model als) could not be exported as "
        f"{MODEL_NAME} v4: OSError: [Errno 28] No space left on device; champion stays v2"]
    assert registry.champion() == 2
