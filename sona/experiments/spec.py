"""Experiment configuration: what ``sona run CONFIG.yaml`` reads.

YAML is only a serialisation of :class:`ExperimentConfig`. Precedence is fixed:
dataclass defaults < YAML file < ``--set key=value`` overrides. Unknown keys fail at load
time, and so do unknown model parameters: each ``models[i].params`` mapping is checked
against that model's config dataclass before anything is trained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sona import config as sona_config
from sona.data.splits import SplitConfig
from sona.errors import ConfigError
from sona.experiments.diversity import DIVERSITY_METRIC, DiversityConfig, validate_diversity
from sona.experiments.sweep_spec import SweepSpec, validate_sweeps
from sona.metrics import METRIC_NAMES
from sona.models.registry import build_model

#: nDCG of lists ranked with each user's held-out context (runner; context-aware models)
CONTEXT_METRIC = "ndcg_context"

#: metric names ``sona.metrics.evaluate`` understands, plus intra-list diversity and the
#: held-out-context nDCG (both computed by the runner)
KNOWN_METRICS: tuple[str, ...] = (*METRIC_NAMES, DIVERSITY_METRIC, CONTEXT_METRIC)

DEFAULT_METRICS = ["precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage",
                   "novelty", "personalization"]


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    """Where the interactions come from."""

    # "ml-100k" (fetched by `sona data fetch`) or "file" (your own CSV/TSV/Parquet)
    name: Literal["ml-100k", "file"] = "ml-100k"
    # interaction file for name "file" (relative to the working directory)
    path: str | None = None
    # canonical column -> column in your file, e.g. {user_id: userId, item_id: movieId}
    columns: dict[str, str] = field(default_factory=dict)
    # folder of fetched datasets; ML-100K is read from <data_dir>/ml-100k
    data_dir: str = "datasets"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model to train: a display name, a registry key and its parameters."""

    # name on the leaderboard and of the MLflow child run (unique within the experiment)
    name: str
    # key in sona.models.registry.MODELS, e.g. "ease", "als"
    model: str
    # fields of the model's config dataclass; unset fields take its defaults
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """MLflow tracking store (local sqlite + artifact folder by default)."""

    # MLflow tracking URI; relative sqlite paths resolve against the working directory
    uri: str = "sqlite:///mlflow/mlflow.db"
    # folder receiving run artifacts (models, leaderboards); never ./mlruns
    artifact_dir: str = "mlflow/artifacts"
    # false: train and evaluate without touching MLflow (`sona run --no-track`)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """A full offline comparison: data, split, models, metrics, tracking."""

    # experiment name: the MLflow experiment and the results file stem
    name: str
    # free text shown in the leaderboard markdown and on the MLflow parent run
    description: str = ""
    # where the interactions come from
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # how to split train/test (sona.data.splits.SplitConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    # recommendation list length for every ranking metric
    k: int = 10
    # metrics to compute (names understood by sona.metrics.evaluate)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    # models to train, in leaderboard order before sorting
    models: list[ModelSpec] = field(default_factory=list)
    # MLflow settings
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # "local" trains in this process; "spark" dispatches to sona.engines.spark
    engine: Literal["local", "spark"] = "local"
    # Spark master URL for engine "spark"
    spark_master: str = "local[2]"
    # global seed recorded with the run (models and split carry their own seeds)
    seed: int = 42
    # folder receiving <name>.md and <name>.json
    results_dir: str = "experiments/results"
    # include the published Microsoft Recommenders ML-100K rows on the leaderboard
    published: bool = True
    # intra-list diversity item vectors and the MMR accuracy-vs-diversity curve
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    # hyper-parameter searches run by `sona sweep` (optuna TPE on a validation split)
    sweeps: list[SweepSpec] = field(default_factory=list)


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Check cross-field rules and every model's parameters; returns ``config``.

    Raises:
        ConfigError: bad k, unknown metric, missing file path, duplicate model name,
            unknown model or unknown/mistyped model parameter (named ``models[i].params.x``).
    """
    if not config.name.strip():
        raise ConfigError("name must not be empty")
    if config.k < 1:
        raise ConfigError(f"k must be >= 1, got {config.k}")
    unknown = [m for m in config.metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; valid metrics: {', '.join(KNOWN_METRICS)}")
    if config.dataset.name == "file" and not config.dataset.path:
        raise ConfigError("dataset.path is required when dataset.name is 'file'")
    if not config.models:
        raise ConfigError("models: list at least one model")
    seen: set[str] = set()
    for i, spec in enumerate(config.models):
        if spec.name in seen:
            raise ConfigError(f"models[{i}].name {spec.name!r} is used twice")
        seen.add(spec.name)
        try:
            build_model(spec.model, spec.params, where=f"models[{i}].params.")
        except ConfigError as exc:
            if f"models[{i}]" in str(exc):
                raise
            raise ConfigError(f"models[{i}].model: {exc}") from exc
    validate_diversity(config)
    validate_sweeps(config)
    return config


def from_mapping(data: dict[str, Any], overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Build and validate a config from plain data (what YAML parses to), overrides last."""
    merged = sona_config.apply_overrides(data, overrides)
    return validate(sona_config.from_dict(ExperimentConfig, merged))


def load_experiment(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Load an experiment YAML, apply ``key.path=value`` overrides, validate strictly.

    Raises:
        DataError: the file is missing or is not valid YAML.
        ConfigError: unknown key, wrong type, or a rule of :func:`validate`.
    """
    return validate(sona_config.load(path, ExperimentConfig, overrides))
