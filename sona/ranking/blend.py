"""Score blending for hybrid recommenders: normalise, pool candidates, fit blend weights.

Generators score on incomparable scales (ALS inner products, EASE regression outputs,
random-walk probabilities), so each generator's row of scores is normalised per user
before a weighted sum. The weights are not guessed (SPEC §2.7 used 0.35/0.30/0.25/0.10):
:func:`fit_blend_weights` chooses them on a validation split by coordinate ascent on the
simplex, maximising mean binary nDCG@k (the evaluation protocol itself).

Every function is pure (arrays in, arrays out). Shapes: ``(n_users, n_items)`` score
matrices over item *indices*; ``exclude`` is a users x items CSR of items that must not be
recommended (seen items), whose entries do not enter the normalisation statistics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.types import IndexArray

log = logging.getLogger(__name__)

Normalization = Literal["zscore", "minmax", "rank", "none"]
FloatMatrix = NDArray[np.float64]


def _masked(scores: NDArray[np.floating], exclude: sp.csr_matrix | None) -> FloatMatrix:
    """Float64 copy with non-finite and excluded entries set to NaN."""
    work = np.array(scores, dtype=np.float64, copy=True)
    if work.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {work.shape}")
    work[~np.isfinite(work)] = np.nan
    if exclude is not None:
        if exclude.shape != work.shape:
            raise ValueError(f"exclude has shape {exclude.shape}, scores {work.shape}")
        ex = exclude.tocsr()
        rows = np.repeat(np.arange(work.shape[0]), np.diff(ex.indptr))
        work[rows, ex.indices] = np.nan
    return work


def normalize_scores(
    scores: NDArray[np.floating],
    method: Normalization = "zscore",
    *,
    exclude: sp.csr_matrix | None = None,
) -> FloatMatrix:
    """Normalise each row of ``scores`` so generators become comparable.

    Statistics are taken over the row's eligible entries (finite, not excluded) and the
    transform is applied to every finite entry, so an excluded (seen) item keeps a finite,
    comparable value when a caller ranks with ``exclude_seen=False``.

    Methods: ``"zscore"`` ``(s - mean) / std``; ``"minmax"`` ``(s - min) / (max - min)``
    (eligible entries in [0, 1]); ``"rank"`` ``1 - rank / n`` over all finite entries (best
    = 1, ties share the lower rank); ``"none"`` leaves values as they are. A constant row
    maps to 0 (zscore, minmax). Non-finite inputs stay NaN.

    Returns:
        float64 ``(n_users, n_items)``.

    Raises:
        ValueError: unknown method or bad shapes.
    """
    raw = np.array(scores, dtype=np.float64, copy=True)
    if raw.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {raw.shape}")
    raw[~np.isfinite(raw)] = np.nan
    if method == "none":
        return raw
    if method == "rank":
        filled = np.where(np.isnan(raw), -np.inf, raw)
        # rank 0 = best; equal scores share the smaller rank (stable sort, then cummax)
        order = np.argsort(-filled, axis=1, kind="stable")
        sorted_vals = np.take_along_axis(filled, order, axis=1)
        pos = np.arange(raw.shape[1])[None, :].repeat(raw.shape[0], axis=0)
        new_value = np.ones_like(sorted_vals, dtype=bool)
        new_value[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
        first = np.maximum.accumulate(np.where(new_value, pos, 0), axis=1)
        ranks = np.empty_like(first)
        np.put_along_axis(ranks, order, first, axis=1)
        out = 1.0 - ranks / max(raw.shape[1], 1)
        out[np.isnan(raw)] = np.nan
        return out
    if method == "minmax":
        return minmax_rows(raw, excluded_mask(exclude, raw.shape))
    if method != "zscore":
        raise ValueError(f"unknown normalization {method!r}; expected zscore, minmax, "
                         "rank or none")
    eligible = _masked(raw, exclude)
    with np.errstate(invalid="ignore", divide="ignore"):
        has = ~np.all(np.isnan(eligible), axis=1, keepdims=True)
        safe = np.where(has, eligible, 0.0)
        center = np.nanmean(np.where(has, eligible, 0.0), axis=1, keepdims=True)
        spread = np.nanstd(safe, axis=1, keepdims=True)
        spread = np.where(spread > 0, spread, np.inf)
        return (raw - center) / spread


def excluded_mask(exclude: sp.csr_matrix | None,
                  shape: tuple[int, ...]) -> NDArray[np.bool_] | None:
    """Dense ``(n_users, n_items)`` mask of the entries of ``exclude`` (None: no exclusions).

    Raises:
        ValueError: ``exclude`` does not have ``shape``.
    """
    if exclude is None:
        return None
    if exclude.shape != shape:
        raise ValueError(f"exclude has shape {exclude.shape}, scores {shape}")
    ex = exclude.tocsr()
    mask = np.zeros(shape, bool)
    mask[np.repeat(np.arange(shape[0]), np.diff(ex.indptr)), ex.indices] = True
    return mask


def minmax_rows(raw: NDArray[np.float64],
                excluded: NDArray[np.bool_] | None = None) -> FloatMatrix:
    """``"minmax"`` of :func:`normalize_scores` along the last axis of ``raw`` (any leading
    axes, e.g. a batch's ``(B, S, n)`` sources at once).

    Args:
        raw: float64 scores, non-finite entries already NaN.
        excluded: bool mask broadcastable to ``raw``; its entries do not enter the
            statistics (they are still transformed).

    Every output entry is ``(s - min) / (max - min)`` of its own row, elementwise float64,
    so a row's bits do not depend on the other rows or axes it is stacked with.
    """
    eligible = raw if excluded is None else np.where(excluded, np.nan, raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        # fmin/fmax skip NaN (np.nanmin's own reduction); a row with no eligible entry
        # gets NaN and is then treated as constant 0: min 0, spread 0 -> every entry 0
        low = np.fmin.reduce(eligible, axis=-1, keepdims=True)
        high = np.fmax.reduce(eligible, axis=-1, keepdims=True)
        empty = np.isnan(low)
        if empty.any():
            low[empty] = 0.0
            high[empty] = 0.0
        spread = high - low
        spread[~(spread > 0)] = np.inf
        return (raw - low) / spread


def pool_candidates(
    scores: Sequence[NDArray[np.floating]],
    n_per_generator: int,
    *,
    exclude: sp.csr_matrix | None = None,
) -> NDArray[np.bool_]:
    """Union of each generator's top-``n_per_generator`` eligible items, per user.

    Args:
        scores: one ``(n_users, n_items)`` matrix per generator (any scale).
        n_per_generator: items taken from each generator (SPEC §2.7: 100); ``<= 0`` or
            ``>= n_items`` pools every eligible item.
        exclude: items never pooled (seen items).

    Returns:
        bool ``(n_users, n_items)``; ties at the cut are broken by the lower item index.
    """
    if not scores:
        raise ValueError("pool_candidates needs at least one score matrix")
    shape = np.shape(scores[0])
    pool = np.zeros(shape, dtype=bool)
    for s in scores:
        work = _masked(s, exclude)
        eligible = ~np.isnan(work)
        n_items = work.shape[1]
        if n_per_generator <= 0 or n_per_generator >= n_items:
            pool |= eligible
            continue
        filled = np.where(eligible, work, -np.inf)
        # lexsort-free: stable argsort of -score keeps the lower index first among ties
        top = np.argsort(-filled, axis=1, kind="stable")[:, :n_per_generator]
        picked = np.zeros(shape, dtype=bool)
        np.put_along_axis(picked, top, True, axis=1)
        pool |= picked & eligible
    return pool


def blend_scores(normalized: Sequence[FloatMatrix],
                 weights: Sequence[float] | NDArray[np.floating]) -> FloatMatrix:
    """Weighted sum ``Σ_g w_g · s_g`` of normalised score matrices (NaN where any is NaN)."""
    if len(normalized) != len(weights):
        raise ValueError(f"{len(normalized)} score matrices but {len(weights)} weights")
    if not normalized:
        raise ValueError("blend_scores needs at least one score matrix")
    out = np.zeros(np.shape(normalized[0]), dtype=np.float64)
    for s, w in zip(normalized, weights, strict=True):
        if w != 0.0:
            out += float(w) * np.asarray(s, dtype=np.float64)
        else:
            out += np.where(np.isnan(s), np.nan, 0.0)
    return out


def ndcg_from_scores(
    scores: NDArray[np.floating],
    relevant: sp.csr_matrix,
    n_relevant: NDArray[np.integer],
    k: int,
) -> NDArray[np.float64]:
    """Per-user binary nDCG@k of the top-``k`` of each row (NaN/-inf entries never ranked).

    ``DCG = Σ_{i<k} rel_i / log2(i + 2)``, ``IDCG = Σ_{i < min(|R|, k)} 1 / log2(i + 2)``
    with ``|R| = n_relevant`` (which may count relevant items absent from the columns, as
    held-out items unknown to the model are in the evaluation protocol). NaN where
    ``|R| = 0``. Equal to :func:`sona.metrics.ndcg_at_k` on the same lists; ties are
    broken by the lower column index, as :func:`sona.ranking.topk.topk` does.
    """
    from sona.ranking.topk import topk

    idx, _ = topk(np.asarray(scores), k)
    return ndcg_of_lists(idx, relevant, n_relevant, k)


def ndcg_of_lists(idx: IndexArray, relevant: sp.csr_matrix, n_relevant: NDArray[np.integer],
                  k: int) -> NDArray[np.float64]:
    """Per-user binary nDCG@k of ranked index lists (``-1`` padding never hits).

    Same formula as :func:`ndcg_from_scores`, for lists already ranked (e.g. after MMR).
    """
    idx = np.asarray(idx)[:, :k]
    valid = idx >= 0
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1]).reshape(idx.shape)
    hits = np.zeros(idx.shape, dtype=np.float64)
    if valid.any():  # scipy turns an empty fancy index into a matrix, not an empty array
        hits[valid] = np.asarray(relevant.tocsr()[rows[valid], idx[valid]]).ravel() > 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts[:idx.shape[1]]
    ideal_n = np.minimum(np.asarray(n_relevant), k)
    idcg = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_n]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dcg / idcg
    out[ideal_n == 0] = np.nan
    return out


def fit_blend_weights(
    normalized: Sequence[FloatMatrix],
    relevant: sp.csr_matrix,
    n_relevant: NDArray[np.integer],
    *,
    k: int = 10,
    step: float = 0.05,
    pool: NDArray[np.bool_] | None = None,
    max_rounds: int = 50,
) -> tuple[NDArray[np.float64], float]:
    """Non-negative weights summing to 1 that maximise mean nDCG@k on validation data.

    Coordinate ascent on the simplex: start at the best single generator (a vertex), then
    repeatedly try moving ``δ ∈ {step, 2·step, 4·step, ...}`` of weight from one generator
    to another and keep the best strict improvement; stop when no move improves (or after
    ``max_rounds``). Deterministic: moves are tried in a fixed order and only strict
    improvements count, so ties keep the earlier (simpler) solution.

    Args:
        normalized: per-generator normalised scores of the validation users
            ``(n_users, n_items)``; NaN marks items that must not be ranked.
        relevant: users x items CSR, nonzero where the item is a validation positive.
        n_relevant: ``(n_users,)`` number of validation positives per user (for IDCG).
        k: cut-off of the objective.
        step: smallest weight move (the resolution of the weights).
        pool: optional candidate mask; items outside it are not ranked.
        max_rounds: cap on accepted moves.

    Returns:
        ``(weights, objective)``: ``(n_generators,)`` weights and the mean nDCG@k they reach.

    Raises:
        ValueError: no generator, a bad ``step`` or misaligned shapes.
    """
    g = len(normalized)
    if g == 0:
        raise ValueError("fit_blend_weights needs at least one generator")
    if not 0.0 < step <= 0.5:
        raise ValueError(f"step must be in (0, 0.5], got {step}")
    mats = [np.where(pool, s, np.nan) if pool is not None else np.asarray(s)
            for s in normalized]
    defined = np.asarray(n_relevant) > 0

    def objective(w: NDArray[np.float64]) -> float:
        values = ndcg_from_scores(blend_scores(mats, w), relevant, n_relevant, k)
        return float(np.mean(values[defined])) if defined.any() else 0.0

    best_w = np.zeros(g)
    best = -np.inf
    for i in range(g):
        w = np.zeros(g)
        w[i] = 1.0
        value = objective(w)
        if value > best:
            best, best_w = value, w
    deltas = []
    d = step
    while d < 1.0:
        deltas.append(d)
        d *= 2
    for _ in range(max_rounds):
        move_best, move_w = best, None
        for src in range(g):
            for dst in range(g):
                if src == dst:
                    continue
                for delta in deltas:
                    amount = min(delta, best_w[src])
                    if amount <= 1e-12:
                        break
                    w = best_w.copy()
                    w[src] -= amount
                    w[dst] += amount
                    w = np.round(w / step) * step
                    if w.sum() <= 0:
                        continue
                    w = w / w.sum()
                    value = objective(w)
                    if value > move_best + 1e-12:
                        move_best, move_w = value, w
        if move_w is None:
            break
        best, best_w = move_best, move_w
        log.debug("blend weights %s -> nDCG@%d %.5f", np.round(best_w, 3), k, best)
    return best_w, best


__all__ = ["Normalization", "blend_scores", "excluded_mask", "fit_blend_weights",
           "minmax_rows", "ndcg_from_scores", "ndcg_of_lists", "normalize_scores",
           "pool_candidates"]
