"""Shared ranking operations: top-k with filters, re-ranking, blending, context rules."""

from sona.ranking.blend import (
    blend_scores,
    fit_blend_weights,
    ndcg_from_scores,
    normalize_scores,
    pool_candidates,
)
from sona.ranking.context import Context, ContextStats, context_rerank, context_scores
from sona.ranking.rerank import exploration_rate, explore, mmr
from sona.ranking.topk import topk

__all__ = ["Context", "ContextStats", "blend_scores", "context_rerank", "context_scores",
           "exploration_rate", "explore", "fit_blend_weights", "mmr", "ndcg_from_scores",
           "normalize_scores", "pool_candidates", "topk"]
