"""Batched top-k selection with filters: the one top-k used by every model.

Ties are broken by the lower item index, so a batch and its rows scored one by one give
identical lists. Filtered or non-finite scores never appear; rows with fewer than ``k``
eligible items are padded with index ``-1`` and a NaN score.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.types import PAD_IDX, IndexArray


def topk(
    scores: NDArray[np.floating],
    k: int,
    *,
    exclude: sp.csr_matrix | None = None,
    candidates: IndexArray | None = None,
    exclude_items: IndexArray | None = None,
) -> tuple[IndexArray, NDArray[np.float64]]:
    """Top-``k`` indices and scores per row.

    Args:
        scores: shape ``(n_queries, n_items)``; NaN and -inf mean "not rankable".
        k: list length, >= 1.
        exclude: per-row exclusions, a CSR of shape ``(n_queries, n_items)`` (e.g. seen items).
        candidates: item indices, shared by all rows, to rank among (others are dropped).
        exclude_items: item indices removed from every row.

    Returns:
        ``(idx, top_scores)``, both ``(n_queries, k)``; ``idx`` int64 padded with -1,
        ``top_scores`` float64 padded with NaN, descending within each row.

    Raises:
        ValueError: ``k < 1``, bad shapes, or both ``candidates`` and ``exclude_items``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_queries, n_items), got shape {scores.shape}")
    if candidates is not None and exclude_items is not None:
        raise ValueError("pass either candidates or an exclusion list, not both")
    n, m = scores.shape
    # rank in the input's own float precision: float32 scores partition ~2x faster, and
    # widening them would not change their order
    dtype = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
    work = np.array(scores, dtype=dtype, copy=True)
    work[~np.isfinite(work)] = -np.inf
    if exclude is not None:
        if exclude.shape != (n, m):
            raise ValueError(f"exclude has shape {exclude.shape}, scores {scores.shape}")
        ex = exclude.tocsr()
        rows = np.repeat(np.arange(n), np.diff(ex.indptr))
        work[rows, ex.indices] = -np.inf
    if exclude_items is not None and len(exclude_items):
        work[:, np.asarray(exclude_items, dtype=np.int64)] = -np.inf
    if candidates is not None:
        cand = np.unique(np.asarray(candidates, dtype=np.int64))
        keep = np.full(m, False)
        keep[cand] = True
        work[:, ~keep] = -np.inf
    kk = min(k, m)
    if kk < m:
        # argpartition (the kk largest end up last) then a stable sort by (-score, index)
        part = np.argpartition(work, m - kk, axis=1)[:, m - kk:]
        # include every item tied with the k-th score so tie-breaking by index is exact
        kth = np.take_along_axis(work, part, axis=1).min(axis=1, keepdims=True)
        tied_extra = (work >= kth).sum(axis=1).max()
        if tied_extra > kk:
            width = int(min(m, tied_extra))
            part = np.argpartition(work, m - width, axis=1)[:, m - width:]
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(work, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)[:, :kk]
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top = np.take_along_axis(part_scores, order, axis=1).astype(np.float64)
    invalid = ~np.isfinite(top)
    idx[invalid] = PAD_IDX
    top[invalid] = np.nan
    if kk < k:
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=PAD_IDX)
        top = np.pad(top, ((0, 0), (0, k - kk)), constant_values=np.nan)
    return idx, top
