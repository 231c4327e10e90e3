"""Hyper-parameter sweeps: optuna TPE over a YAML search space, scored on validation only.

``sona sweep CONFIG --model NAME --trials N`` runs the ``sweeps:`` entry of an experiment
file (:mod:`sona.experiments.sweep_spec`):

1. the experiment's split gives train/test; a validation split is carved from *train*
   per user (:func:`sona.models.generators.carve_validation`), so the test split never
   influences a choice;
2. each trial fits the model with the suggested parameters on the fit part and scores the
   validation metric at the experiment's ``k`` (the TPE sampler is seeded: same file,
   same trials);
3. with ``evaluate_best`` the best parameters are refitted on the whole train split and
   evaluated once on test, for the record.

MLflow: one parent run per sweep (tags ``sona.kind=sweep``, git SHA, dataset md5s; the
best parameters and values as metrics) with one nested child run per trial (its params,
the validation metric and fit time). Results also go to
``<results_dir>/<name>-sweep-<model>.md`` and ``.json``.

Reference: Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (TPE), NeurIPS
2011; Akiba et al., "Optuna", KDD 2019.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sona import io
from sona.config import flatten, to_dict
from sona.data.splits import make_split
from sona.errors import ConfigError
from sona.experiments.provenance import git_sha
from sona.experiments.runner import evaluation_users, load_dataset
from sona.experiments.spec import ExperimentConfig, ModelSpec, validate
from sona.experiments.sweep_spec import ParamSpace, SweepSpec
from sona.metrics import evaluate
from sona.models.generators import carve_validation
from sona.models.registry import build_model

if TYPE_CHECKING:
    from sona.experiments.tracking import ActiveRun, Tracker

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    """One trial: its suggested parameters, validation value, fit time and MLflow run."""

    number: int
    params: dict[str, Any]
    value: float
    fit_s: float
    run_id: str | None = None


@dataclass
class SweepResult:
    """Everything one sweep produced.

    Attributes:
        model: the swept ``models[].name``.
        registry: its registry key.
        metric: the validation metric maximised (at ``k``).
        k: the cut-off.
        best_params: the model's full parameters at the best trial.
        best_value: the best validation value.
        trials: every trial in order.
        test_metrics: test metrics of the best parameters refitted on train (or None).
        parent_run_id: MLflow parent run (None without tracking).
        files: written result files.
    """

    model: str
    registry: str
    metric: str
    k: int
    best_params: dict[str, Any]
    best_value: float
    trials: list[TrialResult]
    test_metrics: dict[str, float] | None = None
    parent_run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"model": self.model, "registry": self.registry, "metric": self.metric,
                "k": self.k, "best_params": self.best_params, "best_value": self.best_value,
                "test_metrics": self.test_metrics, "parent_run_id": self.parent_run_id,
                "trials": [{"number": t.number, "params": t.params, "value": t.value,
                            "fit_s": t.fit_s, "run_id": t.run_id} for t in self.trials]}


def _suggest(trial: Any, name: str, space: ParamSpace) -> Any:
    if space.type == "categorical":
        return trial.suggest_categorical(name, list(space.choices))
    assert space.low is not None and space.high is not None
    if space.type == "int":
        step = 1 if space.step is None else int(space.step)
        return trial.suggest_int(name, int(space.low), int(space.high), step=step,
                                 log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), step=space.step,
                               log=space.log)


def find_sweep(config: ExperimentConfig, model: str) -> tuple[SweepSpec, ModelSpec]:
    """The sweep of ``models[].name == model`` and that model's spec.

    Raises:
        ConfigError: no sweep for ``model`` (lists the swept models).
    """
    for sweep in config.sweeps:
        if sweep.model == model:
            return sweep, next(m for m in config.models if m.name == model)
    swept = [s.model for s in config.sweeps]
    raise ConfigError(f"no sweep for model {model!r} in {config.name}; swept models: "
                      f"{', '.join(swept) or 'none (add a sweeps: section)'}")


def run_sweep(config: ExperimentConfig, model: str, *, trials: int | None = None,
              on_trial: Callable[[TrialResult], None] | None = None) -> SweepResult:
    """Run the sweep of ``model`` (a ``models[].name``) and return its result.

    Args:
        config: a validated experiment with a ``sweeps:`` entry for ``model``.
        model: which sweep to run.
        trials: overrides the sweep's ``trials``.
        on_trial: called after each trial (progress display).

    Raises:
        ConfigError: no such sweep, or ``trials < 1``.
        DataError: unreadable data or an empty validation split.
    """
    import optuna

    validate(config)
    sweep, spec = find_sweep(config, model)
    n_trials = sweep.trials if trials is None else trials
    if n_trials < 1:
        raise ConfigError(f"trials must be >= 1, got {n_trials}")
    data, md5 = load_dataset(config.dataset)
    train, test = make_split(data, config.split)[:2]
    vs = carve_validation(train, sweep.validation_ratio, seed=sweep.validation_seed)
    val_users = evaluation_users(vs.fit, vs.validation)
    tags = {"git_sha": git_sha(), "sona.dataset": config.dataset.name, "sona.kind": "sweep",
            "sona.model": spec.model, **{f"dataset.md5.{n}": v for n, v in md5.items()}}
    tracker = _tracker(config)
    results: list[TrialResult] = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sweep.sampler_seed)
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                study_name=f"{config.name}-{model}")
    metric_key = f"val_{sweep.metric}_at_{config.k}"
    if sweep.enqueue_base:
        base = _base_point(spec, sweep)
        if base is not None:
            study.enqueue_trial(base)
    with _parent(tracker, config, model, tags) as parent:
        if parent is not None:
            parent.log_params(flatten({"model": spec.model, "base_params": spec.params,
                                       "sweep": to_dict(sweep), "trials": n_trials,
                                       "k": config.k, "split": to_dict(config.split)}))

        def objective(trial: Any) -> float:
            suggested = {name: _suggest(trial, name, space)
                         for name, space in sweep.space.items()}
            estimator = build_model(spec.model, {**spec.params, **suggested})
            start = time.perf_counter()
            estimator.fit(vs.fit)
            fit_s = time.perf_counter() - start
            recs = estimator.recommend(val_users, k=config.k)
            values = evaluate(recs, val_users, vs.validation, k=config.k,
                              metrics=[sweep.metric])[sweep.metric]
            value = float(np.nanmean(values))
            record = TrialResult(trial.number, suggested, value, fit_s)
            if tracker is not None and parent is not None:
                with tracker.run(config.name, f"{model}-trial-{trial.number}", parent=parent,
                                 tags={**tags, "sona.kind": "sweep-trial"}) as child:
                    child.log_params(flatten({"trial": trial.number, "params": suggested}))
                    child.log_metrics({metric_key: value, "fit_s": fit_s})
                    record.run_id = child.run_id
            results.append(record)
            log.info("%s trial %d: %s -> %s %.4f (%.1f s)", model, trial.number, suggested,
                     metric_key, value, fit_s)
            if on_trial is not None:
                on_trial(record)
            return value

        study.optimize(objective, n_trials=n_trials)
        best = max(results, key=lambda t: (t.value, -t.number))
        result = SweepResult(model=model, registry=spec.model, metric=sweep.metric,
                             k=config.k, best_params={**spec.params, **best.params},
                             best_value=best.value, trials=results)
        if sweep.evaluate_best:
            result.test_metrics = _evaluate_best(config, spec, result.best_params, train, test)
        if parent is not None:
            result.parent_run_id = parent.run_id
            parent.log_params(flatten({"best": best.params}))
            metrics = {f"best_{metric_key}": best.value, "best_trial": float(best.number)}
            metrics.update({f"test_{m}_at_{config.k}": v
                            for m, v in (result.test_metrics or {}).items()})
            parent.log_metrics(metrics)
        result.files = write_sweep(result, config)
        if parent is not None:
            for path in result.files.values():
                parent.log_artifact(path, "sweep")
    return result


def _base_point(spec: ModelSpec, sweep: SweepSpec) -> dict[str, Any] | None:
    """The configured values of the searched parameters, or None if one is out of range."""
    config = to_dict(build_model(spec.model, spec.params).config)
    point = {name: config[name] for name in sweep.space}
    for name, space in sweep.space.items():
        value = point[name]
        if space.type == "categorical":
            if value not in space.choices:
                return None
        elif space.low is not None and space.high is not None and not (
                space.low <= value <= space.high):
            return None
    return point


def _evaluate_best(config: ExperimentConfig, spec: ModelSpec, params: dict[str, Any],
                   train: Any, test: Any) -> dict[str, float]:
    """Refit the best parameters on the whole train split; mean test metrics (the record)."""
    from sona.experiments.diversity import DIVERSITY_METRIC

    estimator = build_model(spec.model, params).fit(train)
    users = evaluation_users(train, test)
    recs = estimator.recommend(users, k=config.k)
    names = [m for m in config.metrics if m != DIVERSITY_METRIC]
    per_query = evaluate(recs, users, test, k=config.k, metrics=names, train=train)
    return {m: float(np.nanmean(v)) for m, v in per_query.items()}


def write_sweep(result: SweepResult, config: ExperimentConfig) -> dict[str, Path]:
    """Write ``<results_dir>/<name>-sweep-<model>.md`` and ``.json``."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_"
                   for c in f"{config.name}-sweep-{result.model}")
    out = Path(config.results_dir)
    files = {"md": out / f"{stem}.md", "json": out / f"{stem}.json"}
    io.write_json(files["json"], io.json_safe(result.to_dict()))
    io.write_text(files["md"], sweep_markdown(result))
    return files


def sweep_markdown(result: SweepResult) -> str:
    """The sweep as Markdown: best parameters, test record, trials best first."""
    key = f"{result.metric}@{result.k}"
    lines = [f"# Sweep: {result.model} ({result.registry})", "",
             f"- objective: validation {key} (validation split carved from train; test "
             "never used for selection)",
             f"- trials: {len(result.trials)}; best validation {key}: {result.best_value:.4f}",
             f"- best parameters: `{result.best_params}`"]
    if result.test_metrics:
        shown = ", ".join(f"{m} {v:.4f}" for m, v in result.test_metrics.items())
        lines.append(f"- best parameters refitted on train, test@{result.k}: {shown}")
    if result.parent_run_id:
        lines.append(f"- MLflow parent run: `{result.parent_run_id}`")
    names = sorted({n for t in result.trials for n in t.params})
    lines += ["", "| trial | " + " | ".join(names) + f" | val {key} | fit s |",
              "|" + "---|" * (len(names) + 3)]
    for t in sorted(result.trials, key=lambda t: -t.value):
        cells = [_cell(t.params.get(n)) for n in names]
        lines.append(f"| {t.number} | " + " | ".join(cells) + f" | {t.value:.4f} | "
                     f"{t.fit_s:.2f} |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)




def _tracker(config: ExperimentConfig) -> Tracker | None:
    if not config.tracking.enabled:
        return None
    from sona.experiments.tracking import Tracker

    return Tracker(config.tracking)


@contextlib.contextmanager
def _parent(tracker: Tracker | None, config: ExperimentConfig, model: str,
            tags: dict[str, str]) -> Iterator[ActiveRun | None]:
    if tracker is None:
        yield None
        return
    with tracker.run(config.name, f"sweep-{model}-{time.strftime('%Y%m%d-%H%M%S')}",
                     tags=tags) as parent:
        yield parent


__all__ = ["SweepResult", "TrialResult", "find_sweep", "run_sweep", "sweep_markdown",
           "write_sweep"]
