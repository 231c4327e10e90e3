"""A full experiment on a tiny synthetic file, tracked in a real MLflow sqlite store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sona.data.interactions import load_interactions
from sona.data.splits import make_split
from sona.errors import ConfigError, DataError
from sona.experiments.results import ExperimentResult
from sona.experiments.runner import evaluation_users, run_experiment, with_tracking
from sona.experiments.spec import ExperimentConfig
from sona.experiments.tracking import Tracker
from sona.metrics import ndcg_at_k, precision_at_k
from sona.models import EASE, EASEConfig, Recommender

Ran = tuple[ExperimentConfig, ExperimentResult, Path]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory,
        make_tiny_config: Callable[..., ExperimentConfig]) -> Ran:
    root = tmp_path_factory.mktemp("tiny")
    cwd = os.getcwd()
    os.chdir(root)  # so a stray ./mlruns would land here and be caught below
    try:
        cfg = make_tiny_config(root)
        result = run_experiment(cfg, progress=False)
    finally:
        os.chdir(cwd)
    return cfg, result, root


def _expected(cfg: ExperimentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EASE's per-user nDCG and precision recomputed from the parts, without the runner."""
    data = load_interactions(cfg.dataset.path, columns=cfg.dataset.columns)
    split = make_split(data, cfg.split)
    users = evaluation_users(split.train, split.test)
    recs = EASE(EASEConfig(l2=50.0)).fit(split.train).recommend(users, k=10)
    truth = split.test.user_items()
    relevant = [truth[u] for u in users.tolist()]
    return users, ndcg_at_k(recs, relevant, 10), precision_at_k(recs, relevant, 10)


def test_leaderboard_values_match_an_independent_computation(ran: Ran) -> None:
    cfg, result, _ = ran
    users, ndcg, precision = _expected(cfg)
    ease = result.model_result("ease")
    np.testing.assert_array_equal(ease.user_ids, users)
    np.testing.assert_allclose(ease.per_query["ndcg"], ndcg)
    row = {r.name: r for r in result.rows}["ease"]
    assert row.metrics["ndcg"] == pytest.approx(np.nanmean(ndcg))
    assert row.metrics["precision"] == pytest.approx(np.nanmean(precision))
    assert 0 < row.metrics["coverage"] <= 1


def test_rows_sorted_by_ndcg_and_per_query_arrays_kept(ran: Ran) -> None:
    _, result, _ = ran
    assert result.sort_metric == "ndcg"
    values = [r.metrics["ndcg"] for r in result.rows]
    assert values == sorted(values, reverse=True)
    assert {r.name for r in result.rows} == {"pop", "ease"}
    n = result.data_stats["n_eval_users"]
    for m in result.models:
        assert m.per_query["ndcg"].shape == (n,)
        assert m.fit_s >= 0 and m.recommend_s > 0
    assert result.published == []  # published rows are ML-100K only


def test_significance_of_the_top_two(ran: Ran) -> None:
    _, result, _ = ran
    c = result.comparison
    assert c is not None
    top, second = result.rows[0].name, result.rows[1].name
    assert (c.a, c.b, c.metric) == (top, second, "ndcg")
    a = result.model_result(top).per_query["ndcg"]
    b = result.model_result(second).per_query["ndcg"]
    assert c.mean_diff == pytest.approx(np.nanmean(a - b))
    assert c.ci_low <= c.mean_diff <= c.ci_high


def test_mlflow_parent_and_child_runs(ran: Ran) -> None:
    cfg, result, root = ran
    tracker = Tracker(cfg.tracking)
    client = tracker.client
    exp = client.get_experiment_by_name("tiny")
    assert exp.artifact_location == (root / "mlflow" / "artifacts" / "tiny").as_uri()
    assert not (root / "mlruns").exists() and not (Path.cwd() / "mlruns").exists()
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["models.1.params.l2"] == "50.0"
    assert parent.data.params["split.method"] == "stratified"
    assert parent.data.tags["best_model"] == result.rows[0].name
    # the MMR accuracy-vs-diversity plot (on by default) is logged with the leaderboard
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")} == {
        "leaderboard/tiny.md", "leaderboard/tiny.json", "leaderboard/tiny-diversity.png"}
    children = {r.info.run_name: r for r in tracker.child_runs(result.parent_run_id)}
    assert set(children) == {"pop", "ease"}
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    md5 = hashlib.md5(Path(cfg.dataset.path).read_bytes()).hexdigest()
    for name, run in children.items():
        row = {r.name: r for r in result.rows}[name]
        assert run.info.run_id == row.run_id
        assert run.data.tags["git_sha"] == sha
        assert run.data.tags["dataset.md5.inter.csv"] == md5
        assert run.data.metrics["ndcg_at_10"] == pytest.approx(row.metrics["ndcg"])
        assert run.data.metrics["fit_s"] == pytest.approx(row.fit_s)
        assert run.data.params["k"] == "10"
    # full model config logged, defaults included
    assert children["ease"].data.params["params.l2"] == "50.0"
    assert children["ease"].data.params["params.binary"] == "True"


def test_model_artifact_loads_back_and_recommends_the_same(ran: Ran, tmp_path: Path) -> None:
    cfg, result, _ = ran
    ease = result.model_result("ease")
    client = Tracker(cfg.tracking).client
    local = client.download_artifacts(ease.run_id, "model", str(tmp_path))
    loaded = Recommender.load(local)
    users = ease.user_ids[:10]
    want = ease.fitted.recommend(users, k=10)
    got = loaded.recommend(users, k=10)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_best_run_is_the_leaderboard_winner(ran: Ran) -> None:
    cfg, result, _ = ran
    best = Tracker(cfg.tracking).best_run("tiny", "ndcg_at_10")
    assert best.run_id == result.rows[0].run_id
    worst = Tracker(cfg.tracking).best_run("tiny", "ndcg_at_10", maximize=False)
    assert worst.run_id == result.rows[-1].run_id


def test_leaderboard_files(ran: Ran) -> None:
    cfg, result, root = ran
    assert result.files == {"md": root / "results" / "tiny.md",
                            "json": root / "results" / "tiny.json",
                            "diversity_png": root / "results" / "tiny-diversity.png"}
    payload = json.loads(result.files["json"].read_text())
    assert [r["name"] for r in payload["rows"]] == [r.name for r in result.rows]
    assert payload["rows"][0]["metrics"]["ndcg"] == pytest.approx(result.rows[0].metrics["ndcg"])
    assert payload["rows"][0]["run_id"] == result.rows[0].run_id
    assert payload["comparison"]["a"] == result.rows[0].name
    assert payload["parent_run_id"] == result.parent_run_id
    md = result.files["md"].read_text()
    assert "| model | source | precision@10 | recall@10 | ndcg@10 | map@10 | coverage |" in md
    assert f"{result.rows[0].metrics['ndcg']:.4f}" in md
    assert "Significance" in md and "Published" not in md


def test_no_track_writes_no_store(tmp_path: Path,
                                  make_tiny_config: Callable[..., ExperimentConfig]) -> None:
    cfg = with_tracking(make_tiny_config(tmp_path, store_template=None,
                                         models=[{"name": "pop", "model": "popularity"}]),
                        False)
    result = run_experiment(cfg, progress=False)
    assert result.parent_run_id is None and result.rows[0].run_id is None
    assert result.comparison is None  # one model: nothing to compare
    assert not (tmp_path / "mlflow").exists()
    assert result.files["json"].exists()


def test_malformed_file_raises_data_error(tmp_path: Path,
                                          make_tiny_config: Callable[..., ExperimentConfig],
                                          ) -> None:
    cfg = with_tracking(make_tiny_config(tmp_path), False)
    Path(cfg.dataset.path).write_text("userId,movieId\n1,2\n3\n4,x,5,6\n")
    with pytest.raises(DataError, match="inter.csv"):
        run_experiment(cfg, progress=False)


def test_spark_engine_without_the_module_is_a_config_error(
        tmp_path: Path, make_tiny_config: Callable[..., ExperimentConfig],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import sona.engines.spark` fail exactly as when the
    # module (or pyspark) is not installed: ModuleNotFoundError naming the module
    monkeypatch.setitem(sys.modules, "sona.engines.spark", None)
    cfg = with_tracking(make_tiny_config(tmp_path, store_template=None, engine="spark"), False)
    with pytest.raises(ConfigError, match=r"engine spark requires sona.engines.spark \(pyspark\)"):
        run_experiment(cfg, progress=False)


def test_fit_metrics_of_a_hybrid_are_logged(tmp_path: Path,
                                            make_tiny_config: Callable[..., ExperimentConfig],
                                            ) -> None:
    hybrid = {"name": "hybrid", "model": "hybrid", "params": {
        "generators": [{"name": "ease", "model": "ease", "params": {"l2": 50.0}},
                       {"name": "pop", "model": "popularity"}], "weight_step": 0.25}}
    cfg = make_tiny_config(tmp_path, models=[hybrid], diversity={"curve": False})
    result = run_experiment(cfg, progress=False)
    run = Tracker(cfg.tracking).client.get_run(result.run_ids["hybrid"])
    weights = result.model_result("hybrid").fitted.weights
    assert run.data.metrics["fit.weight.ease"] == pytest.approx(weights["ease"])
    assert run.data.metrics["fit.weight.pop"] == pytest.approx(weights["pop"])
    assert "fit.validation_ndcg_at_10.blend" in run.data.metrics
