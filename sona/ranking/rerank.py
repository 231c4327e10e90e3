"""List re-ranking: MMR diversity (SPEC §2.7) and ε-greedy exploration (SPEC §2.7 extras).

Both work on a *pool* per query: ``candidates`` ``(n_queries, m)`` item indices (padded
with -1) and their ``relevance`` ``(n_queries, m)``, typically a model's top-100. They
return new lists of item indices, so the caller maps back to external ids once.

MMR (Carbonell & Goldstein, SIGIR 1998) picks greedily::

    argmax_{c ∉ S}  λ · rel(c) − (1 − λ) · max_{s ∈ S} cos(v_c, v_s)

with relevance min-max normalised per query to [0, 1] (so λ means the same for every
model) and the similarity term 0 while ``S`` is empty. λ = 1 is the relevance order,
λ = 0 pure diversity. SPEC default λ = 0.7. All queries advance one pick per step, so the
cost is ``k`` batched matrix-vector products, not a Python loop per user.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from sona.types import PAD_IDX, IndexArray

#: SPEC §2.7: λ of MMR
DEFAULT_LAMBDA = 0.7
#: queries re-ranked per block: bounds memory at block x m x dim floats
_BLOCK = 256


def minmax_rows(values: ArrayLike, valid: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """Min-max normalise each row over its valid entries to [0, 1].

    A row whose valid entries are all equal maps them to 1.0; invalid entries become NaN.
    """
    x = np.array(values, dtype=np.float64, copy=True)
    ok = np.isfinite(x) if valid is None else (valid & np.isfinite(x))
    lo = np.min(np.where(ok, x, np.inf), axis=1, keepdims=True)
    hi = np.max(np.where(ok, x, -np.inf), axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 1.0)
    out[~ok] = np.nan
    return out


def unit_rows(item_vectors: Any) -> NDArray[np.float64]:
    """Dense L2-normalised copy of ``(n_items, dim)`` vectors (zero rows stay zero)."""
    dense = item_vectors.toarray() if sp.issparse(item_vectors) else np.asarray(item_vectors)
    dense = np.asarray(dense, dtype=np.float64)
    if dense.ndim != 2:
        raise ValueError(f"item_vectors must be 2-D (n_items, dim), got shape {dense.shape}")
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)


def mmr(
    candidates: ArrayLike,
    relevance: ArrayLike,
    item_vectors: Any,
    k: int,
    *,
    lambda_: float = DEFAULT_LAMBDA,
    normalize: bool = True,
    unit_vectors: NDArray[np.float64] | None = None,
) -> tuple[IndexArray, NDArray[np.float64]]:
    """Maximal Marginal Relevance re-ranking of each query's candidate pool.

    Args:
        candidates: ``(n_queries, m)`` item indices into ``item_vectors``, -1 = padding.
        relevance: ``(n_queries, m)`` relevance of each candidate (any scale; NaN = drop).
        item_vectors: ``(n_items, dim)`` dense or sparse item vectors (genre one-hot,
            embeddings, interaction columns); similarity is their cosine.
        k: list length; rows with fewer valid candidates are padded (-1, NaN).
        lambda_: trade-off in [0, 1]; 1 keeps the relevance order.
        normalize: min-max normalise relevance per query first (SPEC: relevance normalised).
        unit_vectors: ``unit_rows(item_vectors)``, computed once by a caller that re-ranks
            many times over the same vectors (the served pipeline); None normalises the
            candidates' rows per call. Either way each row gets the same bits: the norm is a
            reduction within the row.

    Returns:
        ``(idx, gains)``, both ``(n_queries, k)``: the picked item indices in pick order
        and each pick's MMR objective value at the time it was picked. Ties go to the
        earlier candidate column.

    Raises:
        ValueError: ``k < 1``, ``lambda_`` outside [0, 1], misaligned shapes or an index
            outside ``item_vectors``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
    cand = np.asarray(candidates, dtype=np.int64)
    rel = np.asarray(relevance, dtype=np.float64)
    if cand.ndim != 2 or cand.shape != rel.shape:
        raise ValueError(f"candidates {cand.shape} and relevance {rel.shape} must be the same "
                         "2-D shape")
    n_items = item_vectors.shape[0] if hasattr(item_vectors, "shape") else len(item_vectors)
    if cand.size and (cand.max() >= n_items or cand.min() < PAD_IDX):
        raise ValueError(f"candidate indices must lie in [-1, {n_items})")
    if unit_vectors is not None:
        if unit_vectors.shape[0] != n_items:
            raise ValueError(f"unit_vectors has {unit_vectors.shape[0]} rows for {n_items} items")
        unit, rows_of = unit_vectors, np.where(cand >= 0, cand, 0)
    else:
        # normalise only the candidates' vectors (a request re-ranks ~50 of thousands)
        used = np.unique(cand[cand >= 0])
        unit = unit_rows(item_vectors[used] if len(used) else item_vectors[:0])
        lookup = np.zeros(n_items, dtype=np.int64)
        lookup[used] = np.arange(len(used))
        rows_of = np.where(cand >= 0, lookup[np.where(cand >= 0, cand, 0)], 0)
    valid = (cand >= 0) & np.isfinite(rel)
    rel = minmax_rows(rel, valid) if normalize else np.where(valid, rel, np.nan)
    n, m = cand.shape
    out_idx = np.full((n, k), PAD_IDX, dtype=np.int64)
    out_gain = np.full((n, k), np.nan)
    for start in range(0, n, _BLOCK):
        rows = slice(start, start + _BLOCK)
        idx, gain = _mmr_block(cand[rows], rows_of[rows], rel[rows], valid[rows], unit, k,
                               lambda_)
        out_idx[rows], out_gain[rows] = idx, gain
    return out_idx, out_gain


def _mmr_block(cand: IndexArray, rows_of: IndexArray, rel: NDArray[np.float64],
               valid: NDArray[np.bool_], unit: NDArray[np.float64], k: int,
               lambda_: float) -> tuple[IndexArray, NDArray[np.float64]]:
    n, m = cand.shape
    if unit.shape[0] == 0:  # no valid candidate anywhere in the block
        return np.full((n, k), PAD_IDX, dtype=np.int64), np.full((n, k), np.nan)
    vectors = unit[np.where(valid, rows_of, 0)] * valid[..., None]  # (n, m, dim)
    max_sim = np.zeros((n, m))
    available = valid.copy()
    idx = np.full((n, k), PAD_IDX, dtype=np.int64)
    gains = np.full((n, k), np.nan)
    rows = np.arange(n)
    # the relevance term does not change between steps: computed once, with the same
    # operations in the same order as inside the loop, so the objective keeps its bits
    relevance_term = lambda_ * np.nan_to_num(rel)
    diversity_weight = 1.0 - lambda_
    if n == 1:  # one request: the same arithmetic on 1-D views, without the row indexing
        _mmr_row(cand[0], relevance_term[0], diversity_weight, available[0], vectors[0],
                 idx[0], gains[0], min(k, m))
        return idx, gains
    for step in range(min(k, m)):
        objective = relevance_term - diversity_weight * max_sim
        objective[~available] = -np.inf
        pick = np.argmax(objective, axis=1)  # first maximum: ties go to the earlier column
        ok = available[rows, pick]
        if not ok.any():
            break
        idx[ok, step] = cand[rows[ok], pick[ok]]
        gains[ok, step] = objective[rows[ok], pick[ok]]
        available[rows[ok], pick[ok]] = False
        picked = vectors[rows, pick]  # (n, dim)
        sims = np.einsum("nmd,nd->nm", vectors, picked)
        max_sim = np.where(ok[:, None], np.maximum(max_sim, sims), max_sim)
    return idx, gains


def _mmr_row(cand: IndexArray, relevance_term: NDArray[np.float64], diversity_weight: float,
             available: NDArray[np.bool_], vectors: NDArray[np.float64], idx: IndexArray,
             gains: NDArray[np.float64], steps: int) -> None:
    """:func:`_mmr_block`'s loop for a single query, writing into ``idx`` and ``gains``.

    Same operations on the same values as the batched loop (the similarity is the same
    einsum reduction over ``dim``), so a request's list is bit for bit the evaluated one.
    """
    max_sim = np.zeros(len(cand))
    for step in range(steps):
        objective = relevance_term - diversity_weight * max_sim
        objective[~available] = -np.inf
        pick = int(np.argmax(objective))  # first maximum: ties go to the earlier column
        if not available[pick]:
            return
        idx[step] = cand[pick]
        gains[step] = objective[pick]
        available[pick] = False
        np.maximum(max_sim, np.einsum("md,d->m", vectors, vectors[pick]), out=max_sim)


def exploration_rate(n_interactions: ArrayLike, *, base: float = 0.2, decay: float = 0.995,
                     floor: float = 0.05) -> NDArray[np.float64]:
    """SPEC §2.7 ε-greedy schedule: ``max(floor, base · decay ** n_interactions)``."""
    n = np.asarray(n_interactions, dtype=np.float64)
    if np.any(n < 0):
        raise ValueError("n_interactions must be >= 0")
    return np.maximum(floor, base * decay ** n)


def explore(
    idx: ArrayLike,
    pool: ArrayLike,
    epsilon: float | ArrayLike,
    *,
    seed: int = 0,
) -> IndexArray:
    """ε-greedy exploration: each slot of a list is, with probability ε, swapped for a
    random item from the query's ``pool`` that is not already in the list.

    Args:
        idx: ``(n_queries, k)`` ranked item indices (-1 padding is left alone).
        pool: ``(n_queries, m)`` item indices to explore from (e.g. ranks k+1..100), -1 pad.
        epsilon: one rate, or one per query (see :func:`exploration_rate`), in [0, 1].
        seed: seed of the draw (same seed, same lists).

    Returns:
        ``(n_queries, k)`` item indices; unexplored slots keep their item and position.
    """
    out = np.array(idx, dtype=np.int64, copy=True)
    pool_arr = np.asarray(pool, dtype=np.int64)
    if out.ndim != 2 or pool_arr.ndim != 2 or len(out) != len(pool_arr):
        raise ValueError(f"idx {out.shape} and pool {pool_arr.shape} must be 2-D with the "
                         "same number of rows")
    eps = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), (len(out),))
    if np.any((eps < 0) | (eps > 1)):
        raise ValueError("epsilon must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    flips = rng.random(out.shape) < eps[:, None]
    order = rng.random(pool_arr.shape).argsort(axis=1)
    for q in np.flatnonzero(flips.any(axis=1)):
        used = set(out[q][out[q] >= 0].tolist())
        spare = [int(i) for i in pool_arr[q][order[q]] if i >= 0 and int(i) not in used]
        for slot in np.flatnonzero(flips[q] & (out[q] >= 0)):
            if not spare:
                break
            out[q, slot] = spare.pop()
    return out


__all__ = ["DEFAULT_LAMBDA", "exploration_rate", "explore", "minmax_rows", "mmr", "unit_rows"]
