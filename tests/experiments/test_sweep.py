from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sona.errors import ConfigError
from sona.experiments.spec import ExperimentConfig
from sona.experiments.sweep import run_sweep
from sona.experiments.tracking import Tracker

SWEEP = {"model": "ease", "trials": 5, "sampler_seed": 3,
         "space": {"l2": {"type": "float", "low": 1.0, "high": 500.0, "log": True}}}


def test_two_trial_sweep_logs_nested_mlflow_runs(
        tmp_path: Path, make_tiny_config: Callable[..., ExperimentConfig]) -> None:
    cfg = make_tiny_config(tmp_path, sweeps=[SWEEP])
    result = run_sweep(cfg, "ease", trials=2)
    assert [t.number for t in result.trials] == [0, 1]
    assert all(1.0 <= t.params["l2"] <= 500.0 for t in result.trials)
    assert result.trials[0].params == {"l2": 50.0}  # trial 0 is the configured starting point
    best = max(result.trials, key=lambda t: t.value)
    assert result.best_value == best.value
    assert result.best_params == {"l2": best.params["l2"]}  # base params {l2: 50} replaced
    assert set(result.test_metrics) == {"precision", "recall", "ndcg", "map", "coverage"}
    client = Tracker(cfg.tracking).client
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["sona.kind"] == "sweep"
    assert parent.data.metrics["best_val_ndcg_at_10"] == pytest.approx(best.value)
    assert parent.data.params["best.l2"] == str(best.params["l2"])
    children = Tracker(cfg.tracking).child_runs(result.parent_run_id)
    assert sorted(r.info.run_name for r in children) == ["ease-trial-0", "ease-trial-1"]
    by_name = {r.info.run_name: r for r in children}
    for t in result.trials:
        run = by_name[f"ease-trial-{t.number}"]
        assert run.info.run_id == t.run_id
        assert run.data.metrics["val_ndcg_at_10"] == pytest.approx(t.value)
        assert float(run.data.params["params.l2"]) == pytest.approx(t.params["l2"])
    payload = json.loads(result.files["json"].read_text())
    assert payload["best_value"] == pytest.approx(best.value)
    assert "ease-trial" not in result.files["md"].read_text()
    assert "| trial | l2 |" in result.files["md"].read_text()
    # the seeded sampler proposes the same trials again
    again = run_sweep(cfg, "ease", trials=2)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]


@pytest.mark.parametrize(("sweep", "message"), [
    ({**SWEEP, "model": "nope"}, "not a models"),
    ({**SWEEP, "space": {"l3": {"type": "float", "low": 1, "high": 2}}}, "no parameter 'l3'"),
    ({**SWEEP, "space": {"l2": {"type": "float", "low": 0.0, "high": 2, "log": True}}},
     "log space needs low > 0"),
    ({**SWEEP, "space": {"binary": {"type": "categorical", "choices": [1.5]}}},
     "expected true/false"),
    ({**SWEEP, "space": {"l2": {"type": "int", "low": 5, "high": 1}}}, "low 5"),
    ({**SWEEP, "metric": "rmse"}, "metric"),
])
def test_sweep_section_is_validated_at_load(tmp_path: Path, sweep: dict, message: str,
                                             make_tiny_config: Callable[..., ExperimentConfig]):
    with pytest.raises(ConfigError, match=message):
        make_tiny_config(tmp_path, sweeps=[sweep])


def test_unknown_sweep_names_the_swept_models(
        tmp_path: Path, make_tiny_config: Callable[..., ExperimentConfig]) -> None:
    cfg = make_tiny_config(tmp_path, sweeps=[SWEEP])
    with pytest.raises(ConfigError, match="swept models: ease"):
        run_sweep(cfg, "pop")
