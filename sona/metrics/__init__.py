"""Evaluation metrics: pure functions from ranked lists and ground truth to per-query values.

Ranking accuracy (:mod:`~sona.metrics.ranking`), beyond-accuracy measures
(:mod:`~sona.metrics.coverage`), rating errors (:mod:`~sona.metrics.errors`) and the
evaluation protocol that ties them to :class:`~sona.data.interactions.Interactions`
(:mod:`~sona.metrics.evaluate`).
"""

from sona.metrics.coverage import catalog_coverage, intra_list_diversity, novelty, personalization
from sona.metrics.errors import mae, rmse
from sona.metrics.evaluate import METRIC_NAMES, evaluate, summarize
from sona.metrics.ranking import (
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

__all__ = [
    "METRIC_NAMES",
    "catalog_coverage",
    "evaluate",
    "hit_rate_at_k",
    "intra_list_diversity",
    "mae",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "personalization",
    "precision_at_k",
    "recall_at_k",
    "rmse",
    "summarize",
]
