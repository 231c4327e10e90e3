"""``sona ab report|list|migrate|simulate`` through the CLI on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sona import io
from sona.ab.records import ExposedItem, OutcomeEvent, VariantSpec
from sona.ab.repository import ExperimentRepository
from sona.cli import _register, app
from sona.errors import UnknownIdError
from sona.experiments.spec import TrackingConfig
from sona.experiments.tracking import Tracker

runner = CliRunner()
_register()


def _setup(tmp_path: Path) -> tuple[Path, str]:
    config = tmp_path / "serving.yaml"
    io.write_yaml(config, {
        "model_name": "ab-cli", "database": str(tmp_path / "sona.db"),
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "artifact_dir": str(tmp_path / "artifacts")}})
    repo = ExperimentRepository(None, data_dir=tmp_path)  # where the server would put it
    exp = repo.create_experiment("cli-exp", [VariantSpec("control", 0.5),
                                             VariantSpec("treatment", 0.5)], salt="cli")
    exp = repo.set_status(exp.id, "running")
    rng = np.random.default_rng(0)
    events = []
    for i in range(60):
        user = f"u{i}"
        variant = repo.assign(exp, user)
        assert variant is not None
        repo.record_exposure(exp, variant, user, [ExposedItem("m1", 0, 1.0, 1.0)])
        lift = 3 if variant.name == "treatment" else 1
        events += [OutcomeEvent(f"{user}-{k}", user, "click")
                   for k in range(int(rng.poisson(lift)))]
    repo.record_events(events)
    url = repo.url
    repo.close()
    return config, url


def test_report_prints_writes_and_logs(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SONA_DB_URL", raising=False)
    config, url = _setup(tmp_path)
    out = tmp_path / "report"
    res = runner.invoke(app, ["ab", "report", "cli-exp", "--config", str(config),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "SRM check passed" in res.stdout and "report.htm" in res.stdout
    assert "MLflow: experiment ab/cli-exp" in res.stdout
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.json", "means.png"}
    tracker = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                     artifact_dir=str(tmp_path / "artifacts")))
    runs = tracker.client.search_runs([tracker.experiment_id("ab/cli-exp")])
    assert len(runs) == 1 and runs[0].data.metrics["treatment.users"] > 0
    repo = ExperimentRepository(url)
    assert repo.get("cli-exp").mlflow_experiment_id == tracker.experiment_id("ab/cli-exp")
    repo.close()
    res = runner.invoke(app, ["ab", "report", "cli-exp", "--db", url, "--json", "--no-mlflow",
                              "--out", str(tmp_path / "json")])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["comparisons"][0]["variant"] == "treatment"
    assert body["comparisons"][0]["significant"] is True


def test_list_migrate_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SONA_DB_URL", raising=False)
    _, url = _setup(tmp_path)
    res = runner.invoke(app, ["ab", "list", "--db", url])
    assert res.exit_code == 0 and "cli-exp" in res.stdout and "running" in res.stdout
    res = runner.invoke(app, ["ab", "migrate", "--db", f"sqlite:///{tmp_path / 'new.db'}"])
    assert res.exit_code == 0 and "revision 0001" in res.stdout
    res = runner.invoke(app, ["ab", "report", "missing", "--db", url, "--no-mlflow"])
    assert isinstance(res.exception, UnknownIdError) and "missing" in str(res.exception)
    res = runner.invoke(app, ["ab", "simulate", "--url", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "admin API key" in res.output
