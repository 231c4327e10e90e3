"""Report files (PNG + HTML + JSON) and the MLflow run linked to each variant's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sona import io
from sona.ab.analysis import ABReport, analyze_frames
from sona.ab.plots import comparison_rows, report_figures, write_report
from sona.ab.records import Experiment, Variant, VariantConfig
from sona.ab.report import log_report, report_metrics
from sona.experiments.spec import TrackingConfig
from sona.experiments.tracking import Tracker
from sona.models.popularity import Popularity, PopularityConfig
from sona.testing.fixtures import random_interactions

MODEL = "ab-test-model"


def _report(uplift: float = 0.3, n: int = 600, seed: int = 0) -> ABReport:
    rng = np.random.default_rng(seed)
    exp = Experiment("e1", "homepage", None, "running", 1.0, "e1", "click", 0.0, 0.0, 100.0,
                     None, None, (
                         Variant("v0", "control", 0.5, VariantConfig()),
                         Variant("v1", "treatment", 0.5, VariantConfig(model_version="1"))))
    arm = np.where(np.arange(n) % 2 == 0, "control", "treatment")
    theta = rng.gamma(2.0, 0.5, n)
    value = rng.poisson(theta * np.where(arm == "treatment", 1 + uplift, 1.0)).astype(float)
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "variant": arm,
                          "assigned_at": 100.0 + np.arange(n), "exposures": 1,
                          "first_exposure_at": 100.0 + np.arange(n), "events": value.astype(int),
                          "value": value, "pre_events": 0,
                          "pre_value": rng.poisson(theta * 3).astype(float)})
    outcomes = pd.DataFrame({"user_id": users["user_id"], "variant": arm, "value": value,
                             "recorded_at": 100.5 + np.arange(n)})
    return analyze_frames(exp, users, outcomes, metric="click")


def test_write_report_files(tmp_path: Path) -> None:
    report = _report()
    figures = report_figures(report)
    assert set(figures) == {"means", "uplift", "posterior", "sequential"}
    assert len(figures["uplift"].axes[0].get_yticklabels()) == 2  # raw and CUPED
    paths = write_report(report, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"report.json", "report.html", "means.png",
                                                 "uplift.png", "posterior.png",
                                                 "sequential.png"}
    assert all(io.read_bytes(paths[k])[:8] == b"\x89PNG\r\n\x1a\n"
               for k in ("means", "uplift", "posterior", "sequential"))
    page = paths["html"].read_text()
    assert "A/B report: homepage" in page and page.count("data:image/png;base64,") == 4
    assert "No sample-ratio mismatch" in page
    body = json.loads(paths["json"].read_text())
    assert body["comparisons"][0]["variant"] == "treatment"
    row = comparison_rows(report)[0]
    assert row["significant"] is True and row["uplift"] > 0


def test_log_report_links_variant_models(tmp_path: Path) -> None:
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_dir=str(tmp_path / "artifacts"))
    tracker = Tracker(tracking)
    data = random_interactions()
    runs = []
    for _ in range(2):
        with tracker.run("training", "popularity") as run:
            run.log_model(Popularity(PopularityConfig()).fit(data))
            runs.append(run.run_id)
    assert tracker.register_model(runs[0], MODEL) == 1
    assert tracker.register_model(runs[1], MODEL) == 2
    tracker.set_alias(MODEL, "champion", 2)
    report = _report()
    files = write_report(report, tmp_path / "files")
    exp_id, run_id = log_report(report, tracking, model_name=MODEL, files=files)
    logged = tracker.client.get_run(run_id)
    assert logged.data.tags["variant.control.model"] == f"{MODEL}/2"  # the champion
    assert logged.data.tags["variant.control.model_run_id"] == runs[1]
    assert logged.data.tags["variant.treatment.model"] == f"{MODEL}/1"  # pinned version
    assert logged.data.tags["variant.treatment.model_run_id"] == runs[0]
    assert logged.data.tags["srm_flagged"] == "false"
    assert logged.data.metrics["treatment.uplift"] == pytest.approx(
        report.comparison("treatment").welch.relative_uplift)  # type: ignore[union-attr]
    assert set(report_metrics(report)) <= set(logged.data.metrics)
    assert logged.data.params["variant.treatment.config"] == '{"model_version": "1"}'
    artifacts = {f.path for f in tracker.client.list_artifacts(run_id, "report")}
    assert "report/report.html" in artifacts and "report/means.png" in artifacts
    assert tracker.model_version_info(MODEL, 1)["tags"]["ab.homepage.treatment"] == run_id
    assert tracker.client.get_experiment(exp_id).name == "ab/homepage"
