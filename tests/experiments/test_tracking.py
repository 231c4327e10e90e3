"""Tracker: runs, artifacts and the model registry on a real MLflow sqlite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sona.errors import ConfigError
from sona.experiments.provenance import git_sha
from sona.experiments.spec import TrackingConfig
from sona.experiments.tracking import Tracker
from sona.models import EASE, EASEConfig, Popularity, Recommender
from sona.testing.fixtures import random_interactions


@pytest.fixture()
def tracker(tmp_path: Path, store_template: Path) -> Tracker:
    shutil.copyfile(store_template, tmp_path / "mlflow.db")
    return Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                  artifact_dir=str(tmp_path / "artifacts")))


@pytest.fixture(scope="module")
def models() -> tuple[EASE, EASE]:
    data = random_interactions(n_users=30, n_items=25, n_interactions=300, seed=1)
    return EASE(EASEConfig(l2=10.0)).fit(data), EASE(EASEConfig(l2=1000.0)).fit(data)


def _logged_run(tracker: Tracker, model: Recommender, name: str, ndcg: float) -> str:
    with tracker.run("reg", "parent") as parent, \
            tracker.run("reg", name, parent=parent) as child:
        child.log_metrics({"ndcg_at_10": ndcg})
        child.log_model(model)
    return child.run_id


def test_experiment_artifacts_go_under_artifact_dir(tracker: Tracker, tmp_path: Path,
                                                    models: tuple[EASE, EASE]) -> None:
    run_id = _logged_run(tracker, models[0], "ease", 0.3)
    exp = tracker.client.get_experiment_by_name("reg")
    assert exp.artifact_location == (tmp_path / "artifacts" / "reg").as_uri()
    files = sorted(p.name for p in (tmp_path / "artifacts" / "reg" / run_id / "artifacts" /
                                    "model").iterdir())
    assert files == ["arrays.npz", "config.yaml", "ids.parquet"]
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_failed_block_marks_the_run_failed(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError, match="boom"), tracker.run("reg", "bad") as run:
        raise RuntimeError("boom")
    assert tracker.client.get_run(run.run_id).info.status == "FAILED"


def test_register_promote_and_download(tracker: Tracker, tmp_path: Path,
                                       models: tuple[EASE, EASE]) -> None:
    first, second = models
    v1 = tracker.register_model(_logged_run(tracker, first, "ease-a", 0.3), "sona-ease")
    v2 = tracker.register_model(_logged_run(tracker, second, "ease-b", 0.4), "sona-ease")
    assert (v1, v2) == (1, 2)
    assert tracker.get_alias_version("sona-ease", "champion") is None

    assert tracker.promote("sona-ease", v1) is None
    assert tracker.get_alias_version("sona-ease", "champion") == 1
    assert tracker.promote("sona-ease", v2) == 1
    assert tracker.get_alias_version("sona-ease", "champion") == 2
    assert tracker.get_alias_version("sona-ease", "previous") == 1

    local = tracker.download_model("sona-ease", "champion", tmp_path / "dl")
    loaded = Recommender.load(local)
    assert loaded.config == second.config
    users = second.users_.ids_array[:5]
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids,
                                  second.recommend(users, k=5).ids)
    rollback = Recommender.load(tracker.download_model("sona-ease", "previous"))
    assert rollback.config == first.config

    tracker.set_alias("sona-ease", "champion", v1)
    assert tracker.get_alias_version("sona-ease", "champion") == 1


def test_registry_errors(tracker: Tracker, models: tuple[EASE, EASE]) -> None:
    with tracker.run("reg", "no-model") as run:
        run.log_metrics({"ndcg_at_10": 0.1})
    with pytest.raises(ConfigError, match=f"run {run.run_id} has no artifact 'model'"):
        tracker.register_model(run.run_id, "sona-x")
    tracker.register_model(_logged_run(tracker, models[0], "ease", 0.2), "sona-x")
    with pytest.raises(ConfigError, match="has no alias 'champion'"):
        tracker.download_model("sona-x", "champion")


def test_best_run(tracker: Tracker) -> None:
    ids = {}
    for name, value in [("a", 0.2), ("b", 0.5), ("c", 0.1)]:
        with tracker.run("best", name) as run:
            run.log_metrics({"ndcg_at_10": value, "nan_metric": float("nan")})
        ids[name] = run.run_id
    with tracker.run("best", "no-metric"):
        pass
    assert tracker.best_run("best", "ndcg_at_10").run_id == ids["b"]
    low = tracker.best_run("best", "ndcg_at_10", maximize=False)
    assert (low.run_id, low.metrics["ndcg_at_10"], low.run_name) == (ids["c"], 0.1, "c")
    with pytest.raises(ConfigError, match="no run of experiment 'best' logged metric 'recall'"):
        tracker.best_run("best", "recall")
    with pytest.raises(ConfigError, match="no MLflow experiment named 'nope'"):
        tracker.best_run("nope", "ndcg_at_10")


def test_params_are_batched_and_truncated(tracker: Tracker) -> None:
    params = {f"p{i}": i for i in range(250)}
    params["long"] = "x" * 7000
    with tracker.run("params", "many") as run:
        run.log_params(params)
    logged = tracker.client.get_run(run.run_id).data.params
    assert len(logged) == 251 and logged["p249"] == "249"
    assert len(logged["long"]) == 6000 and logged["long"].endswith("...")


def test_popularity_round_trip_through_artifacts(tracker: Tracker, tmp_path: Path) -> None:
    data = random_interactions(n_users=20, n_items=15, n_interactions=120, seed=2)
    model = Popularity().fit(data)
    run_id = _logged_run(tracker, model, "pop", 0.1)
    local = tracker.client.download_artifacts(run_id, "model", str(tmp_path))
    users = data.users.ids_array[:4]
    np.testing.assert_array_equal(Recommender.load(local).recommend(users, k=3).ids,
                                  model.recommend(users, k=3).ids)


def test_git_sha(tmp_path: Path) -> None:
    assert git_sha(tmp_path) == "unknown"  # not a repository
    sha = git_sha()
    assert sha == "unknown" or (len(sha) == 40 and all(c in "0123456789abcdef" for c in sha))
