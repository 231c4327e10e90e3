"""Beyond-accuracy metrics: catalog coverage, novelty, intra-list diversity, personalization.

Inputs follow :mod:`sona.metrics.ranking`: ``recommended`` is a ``Recommendations`` or a 2-D
id array padded with ``-1``/``""``; padded entries never count and an id repeated within a
list counts once. Pass ``recommended[:, :k]`` (or ``Recommendations`` of length ``k``) to
measure at a cut-off.

References: Ge, Delgado-Battenfeld & Jannach, "Beyond accuracy: evaluating recommender
systems by coverage and serendipity", RecSys 2010 (coverage); Zhou et al., "Solving the
apparent diversity-accuracy dilemma of recommender systems", PNAS 107(10), 2010 (novelty as
self-information, personalization as inter-list overlap); Ziegler et al., "Improving
recommendation lists through topic diversification", WWW 2005 (intra-list diversity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from sona.metrics._lists import (
    RecommendedLike,
    factorize_ids,
    first_occurrence,
    id_matrix,
    key_array,
)

FloatArray = NDArray[np.float64]

#: entries of the (queries x list x dim) block gathered at once by intra_list_diversity
_BLOCK_ENTRIES = 4_000_000


def _distinct_codes(
    recommended: RecommendedLike,
) -> tuple[NDArray[Any], NDArray[np.bool_], NDArray[np.int64], int]:
    """ids, the mask of real first-occurrence entries, per-entry codes (-1 elsewhere), n codes."""
    ids, valid = id_matrix(recommended)
    codes, _, n_codes = factorize_ids(ids[valid], np.empty(0, dtype=ids.dtype))
    full = np.full(ids.shape, -1, dtype=np.int64)
    full[valid] = codes
    keys = np.where(valid, np.arange(ids.shape[0])[:, None] * max(n_codes, 1) + full, -1)
    real = valid & first_occurrence(keys, valid)
    return ids, real, np.where(real, full, -1), n_codes


def catalog_coverage(recommended: RecommendedLike, n_items: int) -> float:
    """Share of the catalog recommended to at least one query (Ge et al. 2010).

    ``coverage = |union of all lists| / n_items``. Microsoft Recommenders uses the number of
    distinct training items as ``n_items``.

    Args:
        recommended: ids ``(n_queries, k)`` or ``Recommendations``.
        n_items: catalog size, ``>= 1``.

    Returns:
        A float in [0, 1] (0 when every list is empty).

    Raises:
        ValueError: ``n_items < 1`` or more distinct recommended ids than ``n_items``.
    """
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    _, _, _, n_distinct = _distinct_codes(recommended)
    if n_distinct > n_items:
        raise ValueError(f"{n_distinct} distinct recommended items exceed n_items={n_items}")
    return n_distinct / int(n_items)


def novelty(
    recommended: RecommendedLike, item_popularity: Mapping[Any, float], n_users: int
) -> FloatArray:
    """Mean self-information of each list's items (Zhou et al. 2010).

    ``novelty(u) = mean_{i in L_u} -log2(pop(i) / n_users)``, where ``pop(i)`` counts the
    training users who interacted with ``i``: an item everyone has seen scores 0, one seen
    by a single user scores ``log2(n_users)``. (Microsoft Recommenders' ``novelty`` passes
    interaction counts with ``n_users`` = number of training interactions and averages over
    all recommendations instead of per list.)

    Args:
        recommended: ids ``(n_queries, k)`` or ``Recommendations``.
        item_popularity: ``item id -> pop(i)``; must cover every recommended id.
        n_users: the population ``pop`` is a share of, ``>= 1``.

    Returns:
        ``(n_queries,)`` values in ``[0, log2(n_users)]``; NaN for an empty list.

    Raises:
        ValueError: a recommended id absent from ``item_popularity``, or whose popularity is
            not in ``(0, n_users]`` (its self-information would be infinite or negative).
    """
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    ids, real, _, _ = _distinct_codes(recommended)
    pop_ids = key_array(list(item_popularity.keys()))
    pop_values = np.asarray(list(item_popularity.values()), dtype=np.float64)
    rec_codes, pop_codes, n_codes = factorize_ids(ids[real], pop_ids)
    by_code = np.full(n_codes, np.nan)
    by_code[pop_codes] = pop_values
    pop = by_code[rec_codes]
    bad = ~((pop > 0) & (pop <= n_users))
    if bad.any():
        shown = pd.unique(ids[real][bad])[:5].tolist()
        raise ValueError(f"novelty needs a popularity in (0, n_users={n_users}] for every "
                         f"recommended item; missing or out of range for {shown}")
    info = np.zeros(ids.shape, dtype=np.float64)
    info[real] = -np.log2(pop / n_users)
    counts = real.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = info.sum(axis=1) / counts
    values[counts == 0] = np.nan
    return values


def intra_list_diversity(
    recommended_idx: ArrayLike, item_vectors: ArrayLike | sp.spmatrix | sp.sparray
) -> FloatArray:
    """Mean pairwise cosine distance between the items of each list (Ziegler et al. 2005).

    ``ILD(L) = 2 / (n (n - 1)) * sum_{i < j} (1 - cos(v_i, v_j))`` over the ``n`` distinct
    items of ``L``. A zero vector has cosine 0 with everything (scikit-learn's convention),
    so it is at distance 1. With non-negative vectors (genres, TF-IDF) ILD is in [0, 1];
    in general in [0, 2].

    Args:
        recommended_idx: item **indices** ``(n_queries, k)`` into ``item_vectors`` rows,
            padded with -1.
        item_vectors: ``(n_items, dim)`` dense or scipy-sparse features or embeddings.

    Returns:
        ``(n_queries,)`` values; NaN for lists with fewer than 2 distinct items.

    Raises:
        ValueError: not 2-D, non-integer indices, or an index outside ``[-1, n_items)``.
    """
    idx = np.asarray(recommended_idx)
    if idx.ndim != 2 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"recommended_idx must be a 2-D integer array, got {idx.dtype} "
                         f"of shape {idx.shape}")
    idx = idx.astype(np.int64)
    if sp.issparse(item_vectors):
        csr = sp.csr_matrix(item_vectors, dtype=np.float64)
        norms = np.sqrt(np.asarray(csr.multiply(csr).sum(axis=1)).ravel())

        def gather(rows: NDArray[np.int64]) -> FloatArray:
            return np.asarray(csr[rows].toarray())

        shape = csr.shape
    else:
        dense = np.asarray(item_vectors, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(f"item_vectors must be 2-D (n_items, dim), got shape {dense.shape}")
        norms = np.linalg.norm(dense, axis=1)

        def gather(rows: NDArray[np.int64]) -> FloatArray:
            return dense[rows]

        shape = dense.shape
    n_items, dim = int(shape[0]), max(int(shape[1]), 1)
    if idx.size and (idx.min() < -1 or idx.max() >= n_items):
        raise ValueError(f"item indices must lie in [-1, {n_items}), got "
                         f"[{idx.min()}, {idx.max()}]")
    n, k = idx.shape
    valid = idx >= 0
    keys = np.where(valid, np.arange(n)[:, None] * max(n_items, 1) + idx, -1)
    real = valid & first_occurrence(keys, valid)

    scale = np.divide(1.0, norms, out=np.zeros_like(norms, dtype=np.float64), where=norms > 0)
    block = max(1, _BLOCK_ENTRIES // max(k * dim, 1))
    upper = np.triu(np.ones((k, k), dtype=bool), 1)
    totals = np.zeros(n, dtype=np.float64)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        if not real[rows].any():
            continue
        take = np.where(real[rows], idx[rows], 0)
        flat = take.ravel()
        unit = gather(flat) * (scale[flat] * real[rows].ravel())[:, None]
        unit = unit.reshape(take.shape[0], k, -1)
        cosine = unit @ unit.transpose(0, 2, 1)
        pair = real[rows][:, :, None] & real[rows][:, None, :] & upper
        totals[rows] = np.where(pair, 1.0 - cosine, 0.0).sum(axis=(1, 2))
    counts = real.sum(axis=1)
    n_pairs = counts * (counts - 1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        values = totals / n_pairs
    values[counts < 2] = np.nan
    return values


def personalization(recommended: RecommendedLike) -> float:
    """One minus the mean Jaccard overlap between the lists of every pair of queries.

    ``personalization = 1 - 2 / (m (m - 1)) * sum_{u < v} |L_u ∩ L_v| / |L_u ∪ L_v|`` over
    the ``m`` non-empty lists: 1 when no two lists share an item, 0 when all lists are
    the same set (Zhou et al. 2010 measure overlap relative to list length; the Jaccard
    form also handles lists of unequal length). Order within a list is ignored.

    Returns:
        A float in [0, 1]; NaN with fewer than 2 non-empty lists.
    """
    ids, real, codes, n_codes = _distinct_codes(recommended)
    nonempty = real.any(axis=1)
    real, codes = real[nonempty], codes[nonempty]
    m = real.shape[0]
    if m < 2:
        return float("nan")
    rows = np.nonzero(real)[0]
    member = sp.csr_matrix((np.ones(rows.size, dtype=np.float64), (rows, codes[real])),
                           shape=(m, n_codes))
    sizes = np.asarray(member.sum(axis=1)).ravel()
    member_t = member.T.tocsc()
    block = max(1, _BLOCK_ENTRIES // m)
    total = 0.0
    for start in range(0, m, block):
        stop = min(start + block, m)
        inter = (member[start:stop] @ member_t).toarray()
        union = sizes[start:stop, None] + sizes[None, :] - inter
        jaccard = inter / union
        # keep only pairs u < v
        upper = np.arange(m)[None, :] > np.arange(start, stop)[:, None]
        total += float(jaccard[upper].sum())
    return 1.0 - total / (m * (m - 1) / 2.0)
