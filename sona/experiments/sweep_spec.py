"""The ``sweeps:`` section of an experiment YAML: hyper-parameter search spaces.

Each sweep names a model of the same file (``models[i].name``); its ``params`` are the
starting point and ``space`` lists the parameters to search, each with a typed range::

    sweeps:
      - model: ease
        trials: 30
        space:
          l2: {type: float, low: 50, high: 3000, log: true}

Validation is strict and happens at load time, before anything trains: the model must
exist, every searched name must be a field of its config dataclass, ranges must make
sense, and the ends of each range (and every categorical choice) must be accepted by the
model's config (so ``type: float`` on an integer field fails here, not in trial 17).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sona.errors import ConfigError

if TYPE_CHECKING:
    from sona.experiments.spec import ExperimentConfig

#: ranking metrics a sweep may maximise (names of sona.metrics.evaluate)
SWEEP_METRICS = ("ndcg", "precision", "recall", "map", "map_min_k", "mrr", "hit_rate")


@dataclass(frozen=True, slots=True)
class ParamSpace:
    """The search range of one parameter (optuna ``suggest_int/float/categorical``)."""

    # "int", "float" or "categorical"
    type: Literal["int", "float", "categorical"]
    # lower end, inclusive (int/float)
    low: float | None = None
    # upper end, inclusive (int/float)
    high: float | None = None
    # sample on a log scale (int/float; needs low > 0)
    log: bool = False
    # grid step (int/float; None = continuous / step 1 for int)
    step: float | None = None
    # the values to choose from (categorical)
    choices: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """An optuna TPE search over one model's parameters, scored on a validation split."""

    # models[i].name of the model to tune; its params are the starting point
    model: str
    # parameter name -> search range
    space: dict[str, ParamSpace] = field(default_factory=dict)
    # number of trials (sona sweep --trials overrides)
    trials: int = 20
    # share of each user's training interactions a trial fits on; the rest is validation
    validation_ratio: float = 0.75
    # seed of the validation split
    validation_seed: int = 7
    # validation metric maximised at the experiment's k
    metric: str = "ndcg"
    # seed of the TPE sampler (same seed, same trials)
    sampler_seed: int = 42
    # after the search, refit the best parameters on the whole train split and report test
    evaluate_best: bool = True
    # trial 0 evaluates the model's configured parameters (defaults filled in) when they lie
    # inside the space, so the best trial is never worse than the starting point
    enqueue_base: bool = True


def validate_sweeps(config: ExperimentConfig) -> None:
    """Check every sweep of ``config`` (see the module docstring).

    Raises:
        ConfigError: naming ``sweeps[i]...`` and the problem.
    """
    from sona.models.registry import build_model, get_model_class

    models = {m.name: m for m in config.models}
    seen: set[str] = set()
    for i, sweep in enumerate(config.sweeps):
        where = f"sweeps[{i}]"
        if sweep.model not in models:
            raise ConfigError(f"{where}.model {sweep.model!r} is not a models[].name; "
                              f"valid: {', '.join(models)}")
        if sweep.model in seen:
            raise ConfigError(f"{where}.model {sweep.model!r} is swept twice")
        seen.add(sweep.model)
        if sweep.trials < 1:
            raise ConfigError(f"{where}.trials must be >= 1, got {sweep.trials}")
        if not 0.0 < sweep.validation_ratio < 1.0:
            raise ConfigError(f"{where}.validation_ratio must be in (0, 1), got "
                              f"{sweep.validation_ratio}")
        if sweep.metric not in SWEEP_METRICS:
            raise ConfigError(f"{where}.metric {sweep.metric!r}; valid: {', '.join(SWEEP_METRICS)}")
        if not sweep.space:
            raise ConfigError(f"{where}.space: list at least one parameter")
        spec = models[sweep.model]
        fields = {f.name for f in dataclasses.fields(get_model_class(spec.model).config_class)}
        for name, space in sweep.space.items():
            key = f"{where}.space.{name}"
            if name not in fields:
                raise ConfigError(f"{key}: {spec.model} has no parameter {name!r}; valid: "
                                  f"{', '.join(sorted(fields))}")
            for value in _probe_values(space, key):
                build_model(spec.model, {**spec.params, name: value}, where=f"{key} -> ")


def _probe_values(space: ParamSpace, key: str) -> list[Any]:
    """Values that must be valid for the model (range ends or choices); checks the range."""
    if space.type == "categorical":
        if not space.choices:
            raise ConfigError(f"{key}: a categorical space needs choices")
        if space.low is not None or space.high is not None:
            raise ConfigError(f"{key}: a categorical space takes choices, not low/high")
        return list(space.choices)
    if space.low is None or space.high is None:
        raise ConfigError(f"{key}: an {space.type} space needs low and high")
    if space.choices:
        raise ConfigError(f"{key}: choices are only for categorical spaces")
    if space.low > space.high:
        raise ConfigError(f"{key}: low {space.low} > high {space.high}")
    if space.log and space.low <= 0:
        raise ConfigError(f"{key}: a log space needs low > 0, got {space.low}")
    if space.log and space.step is not None:
        raise ConfigError(f"{key}: step and log cannot be combined (optuna)")
    if space.type == "int":
        if any(float(v) != int(v) for v in (space.low, space.high)) or (
                space.step is not None and float(space.step) != int(space.step)):
            raise ConfigError(f"{key}: an int space needs integer low/high/step")
        return [int(space.low), int(space.high)]
    return [float(space.low), float(space.high)]


__all__ = ["SWEEP_METRICS", "ParamSpace", "SweepSpec", "validate_sweeps"]
