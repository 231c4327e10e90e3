"""Diversity on the leaderboard: intra-list diversity and the MMR accuracy-vs-diversity curve.

- ``diversity`` (a metric name in ``metrics:``) is the per-user intra-list diversity of the
  top-k list (:func:`sona.metrics.intra_list_diversity`, mean pairwise cosine distance)
  over item vectors chosen by ``diversity.vectors``: the catalog's genre one-hot
  (``genres``, ML-100K) or the item columns of the training matrix (``interactions``,
  any dataset: two items are similar when the same users chose them); ``auto`` (default)
  takes genres on ML-100K and interactions otherwise.
- the curve re-ranks one model's top-``pool`` lists with MMR (SPEC §2.7) for each λ of
  ``diversity.lambdas`` and records test accuracy and diversity at k: λ = 1 is the model
  itself, lower λ trades accuracy for diversity. Plotted by :mod:`sona.plots`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from sona.data.interactions import Interactions
from sona.errors import ConfigError
from sona.metrics import evaluate, intra_list_diversity
from sona.ranking.rerank import mmr
from sona.types import Recommendations

if TYPE_CHECKING:
    from sona.experiments.spec import DatasetConfig, ExperimentConfig
    from sona.models.base import Recommender

log = logging.getLogger(__name__)

#: the metric name of intra-list diversity in ``metrics:``
DIVERSITY_METRIC = "diversity"


@dataclass(frozen=True, slots=True)
class DiversityConfig:
    """Intra-list diversity and the MMR accuracy-vs-diversity curve."""

    # item vectors: "genres" (catalog genre one-hot, ml-100k only), "interactions" (item
    # columns of the training matrix, any dataset) or "auto" (genres on ml-100k, else
    # interactions)
    vectors: Literal["auto", "genres", "interactions"] = "auto"
    # draw the MMR curve (needs the "ndcg" metric and a local engine)
    curve: bool = True
    # models[i].name re-ranked for the curve; None = the leaderboard's top row
    curve_model: str | None = None
    # MMR λ values of the curve, each in [0, 1]
    lambdas: list[float] = field(
        default_factory=lambda: [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    # candidates per user that MMR re-ranks (the model's top list)
    pool: int = 100


def validate_diversity(config: ExperimentConfig) -> None:
    """Cross-field rules of ``config.diversity``.

    Raises:
        ConfigError: genre vectors on a non-ML-100K dataset, a bad λ or pool, or an unknown
            ``curve_model``.
    """
    d = config.diversity
    uses = DIVERSITY_METRIC in config.metrics or d.curve
    if uses and d.vectors == "genres" and config.dataset.name != "ml-100k":
        raise ConfigError("diversity.vectors 'genres' needs the ml-100k catalog; use "
                          "'interactions' for dataset 'file'")
    if any(not 0.0 <= lam <= 1.0 for lam in d.lambdas):
        raise ConfigError(f"diversity.lambdas must lie in [0, 1], got {d.lambdas}")
    if d.curve and not d.lambdas:
        raise ConfigError("diversity.lambdas: list at least one λ (or set curve: false)")
    if d.pool < config.k:
        raise ConfigError(f"diversity.pool ({d.pool}) must be >= k ({config.k})")
    names = [m.name for m in config.models]
    if d.curve_model is not None and d.curve_model not in names:
        raise ConfigError(f"diversity.curve_model {d.curve_model!r} is not a models[].name; "
                          f"valid: {', '.join(names)}")


def item_vectors(config: DiversityConfig, dataset: DatasetConfig,
                 train: Interactions) -> sp.csr_matrix:
    """``(train.n_items, dim)`` vectors of the training items for ILD and MMR."""
    kind = config.vectors
    if kind == "auto":
        kind = "genres" if dataset.name == "ml-100k" else "interactions"
    if kind == "genres":
        from sona.data.sources import load_ml100k

        catalog = load_ml100k(Path(dataset.data_dir) / "ml-100k").catalog
        genres, _ = catalog.genre_matrix(train.items)
        return genres.tocsr()
    return sp.csr_matrix(train.matrix("weight").T > 0, dtype=np.float32)


def recommendation_idx(recs: Recommendations, train: Interactions) -> np.ndarray:
    """Item indices of ``recs`` in ``train`` (-1 for padding)."""
    idx = np.full(recs.ids.shape, -1, dtype=np.int64)
    valid = recs.valid
    idx[valid] = train.items.numbers(recs.ids[valid])
    return idx


def list_diversity(recs: Recommendations, train: Interactions, vectors: Any,
                   k: int) -> np.ndarray:
    """Per-user intra-list diversity of the top-``k`` of ``recs``."""
    top = Recommendations(recs.ids[:, :k], recs.scores[:, :k])
    return intra_list_diversity(recommendation_idx(top, train), vectors)


def accuracy_diversity_curve(model: Recommender[Any], user_ids: np.ndarray,
                             train: Interactions, test: Interactions, vectors: Any, *,
                             lambdas: list[float], pool: int, k: int,
                             metric: str = "ndcg") -> list[dict[str, float]]:
    """Test ``metric@k`` and ILD@k of ``model``'s lists MMR re-ranked at each λ.

    Returns:
        One ``{"lambda", metric, "diversity"}`` dict per λ, in the given order.
    """
    base = model.recommend(user_ids, k=max(pool, k), exclude_seen=True)
    idx = recommendation_idx(base, train)
    points = []
    for lam in lambdas:
        picked, gains = mmr(idx, np.where(base.valid, base.scores, np.nan), vectors, k,
                            lambda_=lam)
        recs = Recommendations(train.items.ids(picked), gains)
        acc = evaluate(recs, user_ids, test, k=k, metrics=[metric])[metric]
        ild = intra_list_diversity(picked, vectors)
        points.append({"lambda": float(lam), metric: float(np.nanmean(acc)),
                       "diversity": float(np.nanmean(ild))})
        log.info("MMR λ=%.2f: %s@%d %.4f, ILD %.4f", lam, metric, k, points[-1][metric],
                 points[-1]["diversity"])
    return points


__all__ = ["DIVERSITY_METRIC", "DiversityConfig", "accuracy_diversity_curve", "item_vectors",
           "list_diversity", "recommendation_idx", "validate_diversity"]
