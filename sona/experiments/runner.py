"""Run an experiment: load data, split, fit each model, evaluate, track, rank.

Protocol (Microsoft Recommenders): every test user that also appears in train gets a
top-k list with training items excluded; ground truth is all of the user's test items
(binary relevance). Users only in test are skipped (and counted in ``data_stats``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sona import io
from sona.config import flatten, to_dict
from sona.data.interactions import Interactions, load_interactions
from sona.data.sources import load_ml100k
from sona.data.splits import make_split
from sona.errors import ConfigError, DataError
from sona.experiments import leaderboard
from sona.experiments.diversity import (
    DIVERSITY_METRIC,
    accuracy_diversity_curve,
    item_vectors,
    list_diversity,
)
from sona.experiments.provenance import git_sha
from sona.experiments.results import ExperimentResult, ModelResult
from sona.experiments.spec import (
    CONTEXT_METRIC,
    DatasetConfig,
    ExperimentConfig,
    ModelSpec,
    validate,
)
from sona.experiments.stats import compare
from sona.metrics import evaluate
from sona.models.registry import build_model
from sona.types import Recommendations

if TYPE_CHECKING:
    from sona.experiments.tracking import ActiveRun, Tracker

log = logging.getLogger(__name__)


def load_dataset(config: DatasetConfig) -> tuple[Interactions, dict[str, str]]:
    """The interactions named by ``config`` and the md5 of each file read.

    Raises:
        DataError: missing/corrupt ML-100K files, or a malformed interaction file.
    """
    if config.name == "ml-100k":
        movielens = load_ml100k(Path(config.data_dir) / "ml-100k")
        return movielens.interactions, dict(movielens.checksums)
    if not config.path:
        raise ConfigError("dataset.path is required when dataset.name is 'file'")
    path = Path(config.path)
    data = load_interactions(path, columns=config.columns or None)
    return data, {path.name: io.md5sum(path)}


def evaluation_users(train: Interactions, test: Interactions) -> np.ndarray:
    """Test users that also appear in train, sorted (the users every model ranks for)."""
    test_ids = np.asarray(test.users.ids_array)
    keep = train.users.numbers(test_ids, missing="negative") >= 0
    users = test_ids[keep]
    return np.sort(users) if users.dtype != object else np.asarray(sorted(users), dtype=object)


def fit_and_evaluate(
    spec: ModelSpec,
    train: Interactions,
    test: Interactions,
    user_ids: np.ndarray,
    *,
    k: int,
    metrics: list[str],
    on_stage: Any = None,
    vectors: Any = None,
) -> ModelResult:
    """Build ``spec``'s model, fit on ``train``, rank for ``user_ids``, evaluate on ``test``.

    ``vectors`` (``(train.n_items, dim)`` item vectors) is needed when ``metrics`` lists
    ``"diversity"`` (per-user intra-list diversity, computed here, not by ``evaluate``).
    """
    model = build_model(spec.model, spec.params)
    _stage(on_stage, spec.name, "fitting")
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    _stage(on_stage, spec.name, "recommending")
    start = time.perf_counter()
    recs = model.recommend(user_ids, k=k, exclude_seen=True)
    recommend_s = time.perf_counter() - start
    _stage(on_stage, spec.name, "evaluating")
    runner_metrics = (DIVERSITY_METRIC, CONTEXT_METRIC)
    per_query = evaluate(recs, user_ids, test, k=k,
                         metrics=[m for m in metrics if m not in runner_metrics], train=train)
    if DIVERSITY_METRIC in metrics:
        if vectors is None:
            raise ValueError("metric 'diversity' needs item vectors (vectors=)")
        per_query[DIVERSITY_METRIC] = list_diversity(recs, train, vectors, k)
    if CONTEXT_METRIC in metrics:
        per_query[CONTEXT_METRIC] = heldout_context_ndcg(model, recs, user_ids, test, k=k)
    per_query = {m: per_query[m] for m in metrics}
    return ModelResult(name=spec.name, model=spec.model, params=to_dict(model.config),
                       per_query=dict(per_query), fit_s=fit_s, recommend_s=recommend_s,
                       user_ids=user_ids, fitted=model)


def heldout_context_ndcg(model: Any, recs: Recommendations, user_ids: np.ndarray,
                         test: Interactions, *, k: int) -> np.ndarray:
    """Per-user nDCG@k of lists ranked with each user's held-out context.

    The context of a user is the hour and weekday of the middle (median time) of their
    test events (:func:`sona.pipeline.tuning.heldout_contexts`): what a context-aware model
    would have been told when the user came back. Models whose ``recommend`` takes no
    ``context`` rank as without one (their ``recs`` are reused), so the column reads as
    "what context buys" next to the plain nDCG.
    """
    from sona.pipeline.tuning import heldout_contexts

    if "context" in inspect.signature(model.recommend).parameters:
        contexts = heldout_contexts(test, np.asarray(user_ids))
        recs = model.recommend(user_ids, k=k, exclude_seen=True, context=contexts)
    return evaluate(recs, user_ids, test, k=k, metrics=["ndcg"])["ndcg"]


def _stage(callback: Any, name: str, stage: str) -> None:
    if callback is not None:
        callback(name, stage)


def _spark_results(config: ExperimentConfig, train: Interactions,
                   test: Interactions) -> list[ModelResult]:
    try:
        # the engine first: an already imported spark_runner must not hide a missing engine
        importlib.import_module("sona.engines.spark")
        from sona.experiments.spark_runner import run_spark_models
    except ModuleNotFoundError as exc:
        if exc.name in ("sona.engines", "sona.engines.spark", "pyspark", "pyarrow"):
            raise ConfigError("engine spark requires sona.engines.spark (pyspark)") from exc
        raise
    return list(run_spark_models(config, train, test))


def run_experiment(config: ExperimentConfig, *, progress: bool = True) -> ExperimentResult:
    """Run every model of ``config`` and return the ranked, tracked result.

    Side effects: MLflow runs (parent + one child per model) when tracking is enabled, and
    ``<results_dir>/<name>.md`` / ``.json``.

    Raises:
        ConfigError: invalid config, or engine "spark" without ``sona.engines.spark``.
        DataError: unreadable or malformed data, or no test user present in train.
    """
    validate(config)
    data, md5 = load_dataset(config.dataset)
    split = make_split(data, config.split)
    train, test = split.train, split.test
    user_ids = evaluation_users(train, test)
    if len(user_ids) == 0:
        raise DataError("no test user appears in train; nothing to evaluate "
                        f"(split {config.split.method})", path=config.dataset.path)
    stats = {"n_users": data.n_users, "n_items": data.n_items, "n_interactions": len(data),
             "n_train": len(train), "n_test": len(test), "n_eval_users": len(user_ids),
             "n_test_users_not_in_train": test.n_users - len(user_ids)}
    log.info("split %s: %d train / %d test interactions, %d users evaluated",
             config.split.method, len(train), len(test), len(user_ids))
    sha = git_sha()
    tags = {"git_sha": sha, "sona.dataset": config.dataset.name,
            **{f"dataset.md5.{name}": value for name, value in md5.items()}}
    tracker = _tracker(config)
    vectors = (item_vectors(config.diversity, config.dataset, train)
               if DIVERSITY_METRIC in config.metrics or config.diversity.curve else None)
    sort_metric = leaderboard.sort_metric_of(config.metrics)
    result = ExperimentResult(config=config, models=[], rows=[], published=[],
                              sort_metric=sort_metric, data_stats=stats, dataset_md5=md5,
                              git_sha=sha)
    with _parent_run(tracker, config, tags) as parent:
        if parent is not None:
            parent.log_params(flatten(to_dict(config)))
            parent.log_metrics({k: float(v) for k, v in stats.items()})
            result.parent_run_id = parent.run_id
        if config.engine == "spark":
            result.models = _spark_results(config, train, test)
        else:
            with _display(progress, len(config.models)) as on_stage:
                for spec in config.models:
                    result.models.append(fit_and_evaluate(
                        spec, train, test, user_ids, k=config.k, metrics=list(config.metrics),
                        on_stage=on_stage, vectors=vectors))
        if tracker is not None and parent is not None:
            for model_result in result.models:
                _track_model(tracker, parent, config, model_result, tags)
        _rank(result)
        if vectors is not None:
            _diversity_curve(result, train, test, user_ids, vectors)
        result.files = leaderboard.write_leaderboard(result, config.results_dir)
        if parent is not None:
            for path in result.files.values():
                parent.log_artifact(path, "leaderboard")
            if result.rows:
                best = result.rows[0]
                parent.set_tags({"best_model": best.name})
                value = best.metrics.get(sort_metric)
                if value is not None:
                    parent.log_metrics({f"best_{sort_metric}_at_{config.k}": value})
    return result


def _tracker(config: ExperimentConfig) -> Tracker | None:
    if not config.tracking.enabled:
        return None
    # imported here: MLflow takes seconds to import and --no-track runs never need it
    from sona.experiments.tracking import Tracker

    return Tracker(config.tracking)


def _rank(result: ExperimentResult) -> None:
    cfg = result.config
    result.rows = leaderboard.sona_rows(result.models, cfg.metrics, result.sort_metric)
    comparable = cfg.dataset.name == "ml-100k" and cfg.k == 10
    if cfg.published and comparable:
        result.published = leaderboard.published_rows(cfg.metrics)
    elif cfg.published:
        log.info("published rows skipped: they are for ml-100k at k=10")
    if len(result.rows) >= 2:
        top, second = (result.model_result(r.name) for r in result.rows[:2])
        a = top.per_query.get(result.sort_metric)
        b = second.per_query.get(result.sort_metric)
        if a is not None and b is not None and np.ndim(a) == 1 and len(a) == len(b):
            try:
                result.comparison = compare(a, b, name_a=top.name, name_b=second.name,
                                            metric=result.sort_metric, seed=cfg.seed)
            except ValueError as exc:
                log.warning("significance test skipped: %s", exc)


def _diversity_curve(result: ExperimentResult, train: Interactions, test: Interactions,
                     user_ids: np.ndarray, vectors: Any) -> None:
    """MMR accuracy-vs-diversity curve of one fitted model (``config.diversity``)."""
    cfg = result.config
    if not cfg.diversity.curve or "ndcg" not in cfg.metrics or not result.rows:
        return
    name = cfg.diversity.curve_model or result.rows[0].name
    fitted = result.model_result(name).fitted
    if fitted is None:
        log.info("diversity curve skipped: %s has no local fitted model", name)
        return
    result.diversity_curve = accuracy_diversity_curve(
        fitted, user_ids, train, test, vectors, lambdas=list(cfg.diversity.lambdas),
        pool=cfg.diversity.pool, k=cfg.k)
    result.diversity_curve_model = name


def _track_model(tracker: Tracker, parent: ActiveRun, config: ExperimentConfig,
                 model_result: ModelResult, tags: dict[str, str]) -> None:
    child_tags = {**tags, "sona.model": model_result.model}
    with tracker.run(config.name, model_result.name, parent=parent, tags=child_tags) as child:
        child.log_params(flatten({
            "model": model_result.model, "params": model_result.params, "k": config.k,
            "split": to_dict(config.split), "dataset": to_dict(config.dataset),
            "engine": config.engine, "seed": config.seed,
        }))
        summary = model_result.summary()
        metrics = {f"{name}_at_{config.k}": value for name, value in summary.items()}
        metrics.update({"fit_s": model_result.fit_s, "recommend_s": model_result.recommend_s,
                        "n_eval_users": float(len(model_result.user_ids))})
        # models that choose something while fitting (blend weights, feature importance)
        # report it through an optional fit_metrics() -> {name: float}
        report = getattr(model_result.fitted, "fit_metrics", None)
        if callable(report):
            metrics.update({f"fit.{k}": float(v) for k, v in report().items()})
        child.log_metrics(metrics)
        if model_result.fitted is not None:
            child.log_model(model_result.fitted)
        model_result.run_id = child.run_id


@contextlib.contextmanager
def _parent_run(tracker: Tracker | None, config: ExperimentConfig,
                tags: dict[str, str]) -> Iterator[ActiveRun | None]:
    if tracker is None:
        yield None
        return
    with tracker.run(config.name, f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                     tags={**tags, "sona.kind": "experiment"},
                     description=config.description or None) as parent:
        yield parent


@contextlib.contextmanager
def _display(enabled: bool, n_models: int) -> Iterator[Any]:
    """A rich progress bar on stderr: 3 stages (fit, recommend, evaluate) per model."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("models", total=n_models * 3)
        calls = [0]

        def on_stage(name: str, stage: str) -> None:
            # each call after the first marks the previous stage as done
            if calls[0]:
                bar.advance(task)
            calls[0] += 1
            bar.update(task, description=f"{name}: {stage}")

        yield on_stage
        bar.update(task, completed=n_models * 3, description="models: done")


def with_tracking(config: ExperimentConfig, enabled: bool) -> ExperimentConfig:
    """``config`` with tracking switched on/off (``sona run --no-track``)."""
    return dataclasses.replace(config, tracking=dataclasses.replace(config.tracking,
                                                                    enabled=enabled))
