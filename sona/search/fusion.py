"""Fusion of ranked lists and the final ranking-config re-rank (SPEC §3.1).

- :func:`rrf`: weighted Reciprocal Rank Fusion, ``score(d) = sum_s w_s / (k + rank_s(d))``
  with 1-based ranks and ``k = 60`` (Cormack, Clarke & Büttcher, SIGIR 2009).
- :func:`weighted_sum`: ``sum_s w_s * minmax(score_s(d))`` over the union of the lists
  (a document missing from a list gets 0 for it).
- :class:`RankingConfig` + :func:`rerank`: the final score
  ``sum_c w_c * normalised_component_c`` over relevance components (vector, keyword) and
  boosts (quality, freshness, popularity). The original stored these weights but never
  applied them; here they are the ranking.

All functions are pure: positions and scores in, arrays out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Positions = NDArray[np.int64]
Scores = NDArray[np.float64]

RRF_K = 60


def minmax(scores: Scores) -> Scores:
    """Rescale to [0, 1] (NaN -> 0); a constant non-empty vector maps to all ones."""
    arr = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    finite = np.isfinite(arr)
    out = np.zeros(arr.shape, dtype=np.float64)
    if not finite.any():
        return out
    lo, hi = arr[finite].min(), arr[finite].max()
    out[finite] = 1.0 if hi == lo else (arr[finite] - lo) / (hi - lo)
    return out


def union(lists: Sequence[Positions]) -> Positions:
    """Distinct positions of all lists, in first-seen order."""
    if not lists:
        return np.zeros(0, dtype=np.int64)
    stacked = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
    _, first = np.unique(stacked, return_index=True)
    return stacked[np.sort(first)]


def _align(candidates: Positions, positions: Positions, values: Scores) -> Scores:
    """``values`` of ``positions`` re-ordered to ``candidates`` (0 where absent)."""
    out = np.zeros(len(candidates), dtype=np.float64)
    if len(positions) == 0:
        return out
    order = np.argsort(candidates, kind="stable")
    where = np.searchsorted(candidates[order], positions)
    where = np.clip(where, 0, len(candidates) - 1)
    hit = candidates[order][where] == positions
    out[order[where[hit]]] = np.asarray(values, dtype=np.float64)[hit]
    return out


def rrf(lists: Sequence[Positions], weights: Sequence[float], *, k: int = RRF_K,
        candidates: Positions | None = None) -> tuple[Positions, Scores]:
    """Weighted reciprocal rank fusion of ranked position lists.

    Args:
        lists: each a ranked array of document positions (best first, no repeats).
        weights: one non-negative weight per list.
        k: the rank constant (60 in the original and the paper).
        candidates: positions to score (default: the union of the lists, first-seen order).

    Returns:
        ``(candidates, scores)``; scores are not sorted.
    """
    if len(lists) != len(weights):
        raise ValueError(f"{len(lists)} lists but {len(weights)} weights")
    cand = union(lists) if candidates is None else np.asarray(candidates, dtype=np.int64)
    total = np.zeros(len(cand), dtype=np.float64)
    for positions, w in zip(lists, weights, strict=True):
        positions = np.asarray(positions, dtype=np.int64)
        if w == 0 or len(positions) == 0:
            continue
        contrib = w / (k + np.arange(1, len(positions) + 1, dtype=np.float64))
        total += _align(cand, positions, contrib)
    return cand, total


def weighted_sum(lists: Sequence[tuple[Positions, Scores]], weights: Sequence[float], *,
                 candidates: Positions | None = None) -> tuple[Positions, Scores]:
    """``sum_s w_s * minmax(score_s)`` over ``(positions, scores)`` lists (absent = 0)."""
    if len(lists) != len(weights):
        raise ValueError(f"{len(lists)} lists but {len(weights)} weights")
    cand = (union([p for p, _ in lists]) if candidates is None
            else np.asarray(candidates, dtype=np.int64))
    total = np.zeros(len(cand), dtype=np.float64)
    for (positions, scores), w in zip(lists, weights, strict=True):
        if w == 0 or len(positions) == 0:
            continue
        total += w * _align(cand, np.asarray(positions, np.int64), minmax(scores))
    return cand, total


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """Weights of the final score (SPEC §3.1 "ranking config"); must sum to 1, all >= 0.

    Defaults: the original's 0.35 / 0.30 / 0.20 / 0.15 and no popularity boost;
    ``SearchConfig`` ships the weights chosen by ``sona search eval``.
    """

    vector: float = 0.35  # semantic relevance (cosine, or its share of the fused relevance)
    keyword: float = 0.30  # BM25 relevance (or its share of the fused relevance)
    quality: float = 0.20  # data-quality / rating-quality boost (0-1 document field)
    freshness: float = 0.15  # recency boost exp(-(newest year - year) / tau)
    popularity: float = 0.0  # popularity boost (0-1 document field)

    def validated(self) -> RankingConfig:
        """Check non-negative weights summing to 1 (+-1e-4).

        Raises:
            ValueError: a negative weight or a sum away from 1 (gives the sum).
        """
        values = (self.vector, self.keyword, self.quality, self.freshness, self.popularity)
        if any(v < 0 or not math.isfinite(v) for v in values):
            raise ValueError(f"ranking weights must be finite and >= 0, got {values}")
        if abs(sum(values) - 1.0) > 1e-4:
            raise ValueError(f"ranking weights must sum to 1 (+-0.0001), got {sum(values):.6f}")
        return self


def rerank(relevance: dict[str, Scores], boosts: dict[str, Scores],
           config: RankingConfig) -> Scores:
    """Final scores ``sum_c w_c * minmax(component_c)`` for aligned candidate arrays.

    ``relevance`` holds ``"vector"``/``"keyword"`` scores (min-max normalised over the
    candidates here) or a single ``"fused"`` entry that takes both their weights;
    ``boosts`` holds ``"quality"``, ``"freshness"``, ``"popularity"`` already in [0, 1].
    """
    config.validated()
    n = len(next(iter({**relevance, **boosts}.values())))
    total = np.zeros(n, dtype=np.float64)
    if "fused" in relevance:
        total += (config.vector + config.keyword) * minmax(relevance["fused"])
    else:
        for name in ("vector", "keyword"):
            if name in relevance:
                total += getattr(config, name) * minmax(relevance[name])
    for name in ("quality", "freshness", "popularity"):
        weight = getattr(config, name)
        if weight and name in boosts:
            total += weight * np.clip(np.nan_to_num(boosts[name]), 0.0, 1.0)
    return total


def personalize(scores: Scores, affinity: Scores, boost: float) -> Scores:
    """``rel * (1 - b) + sona * b`` with both sides min-max normalised (SPEC §3.1 step 5)."""
    if not 0.0 <= boost <= 1.0:
        raise ValueError(f"personalisation boost must lie in [0, 1], got {boost}")
    if boost == 0.0:
        return np.asarray(scores, dtype=np.float64)
    return minmax(scores) * (1.0 - boost) + minmax(affinity) * boost


PERSONALIZATION_BOOSTS: dict[str, float] = {
    "control": 0.0, "low_boost": 0.15, "medium_boost": 0.25, "high_boost": 0.40,
    "aggressive_boost": 0.60,
}
"""Blend weight ``b`` per ``experiment_variant`` (SPEC §3.1); the default is medium_boost."""
DEFAULT_VARIANT = "medium_boost"

__all__ = [
    "DEFAULT_VARIANT", "PERSONALIZATION_BOOSTS", "RRF_K", "RankingConfig", "minmax",
    "personalize", "rerank", "rrf", "union", "weighted_sum",
]
