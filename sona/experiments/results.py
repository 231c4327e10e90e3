"""What an experiment produces: per-model results, leaderboard rows, the whole result.

:class:`ModelResult` is also the contract of the Spark engine:
``sona.experiments.spark_runner.run_spark_models(config, train, test)`` returns a list of them
(``fitted`` is None there: Spark models are not :class:`~sona.models.base.Recommender`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sona.experiments.spec import ExperimentConfig
from sona.metrics import summarize
from sona.models.base import Recommender

if TYPE_CHECKING:
    from sona.experiments.stats import PairedComparison


@dataclass
class ModelResult:
    """One trained and evaluated model.

    Attributes:
        name: display name (``ModelSpec.name``).
        model: registry key (``ModelSpec.model``) or the engine's model name.
        params: the model's full parameters (defaults filled in), for MLflow params.
        per_query: ``sona.metrics.evaluate`` output: per-query arrays ``(n_users,)`` for
            ranking metrics, 0-d arrays for catalogue-level ones (coverage, personalization).
        fit_s: wall seconds of ``fit``.
        recommend_s: wall seconds of top-k for every evaluated user.
        user_ids: the evaluated users, aligned with the per-query arrays.
        fitted: the fitted model, logged as the run's ``model/`` artifact (None for Spark).
        run_id: MLflow child run id once tracked.
    """

    name: str
    model: str
    params: dict[str, Any]
    per_query: dict[str, np.ndarray]
    fit_s: float
    recommend_s: float
    user_ids: np.ndarray
    fitted: Recommender[Any] | None = None
    run_id: str | None = None

    def summary(self) -> dict[str, float]:
        """Metric name -> mean over users (NaN-skipping; scalars as they are)."""
        return {name: float(v) for name, v in summarize(self.per_query).items()}


@dataclass(frozen=True)
class LeaderboardRow:
    """One line of the leaderboard (a SONA run or a published reference)."""

    name: str
    model: str
    source: Literal["sona", "published"]
    metrics: dict[str, float | None]
    fit_s: float | None = None
    recommend_s: float | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"name": self.name, "model": self.model, "source": self.source,
                "metrics": dict(self.metrics), "fit_s": self.fit_s,
                "recommend_s": self.recommend_s, "run_id": self.run_id}


@dataclass
class ExperimentResult:
    """Everything ``run_experiment`` returns.

    Attributes:
        config: the experiment that ran.
        models: per-model results in config order (per-query arrays kept).
        rows: SONA leaderboard rows, best first by :attr:`sort_metric`.
        published: published reference rows (empty unless comparable and enabled).
        sort_metric: metric the rows are ordered by ("ndcg" when computed).
        comparison: paired test of the top two SONA rows on per-user :attr:`sort_metric`.
        parent_run_id: MLflow parent run (None with tracking disabled).
        files: written leaderboard files, ``{"md": path, "json": path}``.
        data_stats: counts of the split (users, items, interactions, evaluated users).
        dataset_md5: file name -> md5 of the dataset files read.
        git_sha: commit the run was made from.
        diversity_curve: MMR accuracy-vs-diversity points (``lambda``, ``ndcg``,
            ``diversity``) of :attr:`diversity_curve_model`, or None.
        diversity_curve_model: the model whose lists were re-ranked for the curve.
    """

    config: ExperimentConfig
    models: list[ModelResult]
    rows: list[LeaderboardRow]
    published: list[LeaderboardRow]
    sort_metric: str
    comparison: PairedComparison | None = None
    parent_run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)
    data_stats: dict[str, int] = field(default_factory=dict)
    dataset_md5: dict[str, str] = field(default_factory=dict)
    git_sha: str = "unknown"
    diversity_curve: list[dict[str, float]] | None = None
    diversity_curve_model: str | None = None

    @property
    def run_ids(self) -> dict[str, str | None]:
        """Model name -> MLflow child run id."""
        return {m.name: m.run_id for m in self.models}

    def to_frame(self) -> Any:
        """Leaderboard as a pandas frame (SONA rows, then published ones), for notebooks."""
        import pandas as pd

        records = []
        for row in [*self.rows, *self.published]:
            records.append({"model": row.name, "source": row.source, **row.metrics,
                            "fit_s": row.fit_s, "run_id": row.run_id})
        return pd.DataFrame(records)

    def model_result(self, name: str) -> ModelResult:
        """The :class:`ModelResult` called ``name``.

        Raises:
            KeyError: no model of that name ran.
        """
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model named {name!r}; ran: {[m.name for m in self.models]}")
