"""Hypothesis strategies for property tests of metrics and rankers.

All randomness comes from hypothesis, so every failure shrinks and replays. Item ids start
at :data:`ID_OFFSET`, so a test that confuses ids with indices fails.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from sona.types import PAD_ID, PAD_IDX

#: first item id; ids are ``ID_OFFSET + j`` for ``j < n_items``
ID_OFFSET = 100


class RankingCase(NamedTuple):
    """Ranked lists and their ground truth.

    Attributes:
        recommended: ``(n_queries, length)`` int64 item ids, ``PAD_ID`` at the tail.
        relevant: per query a set of ids, or (graded) a dict ``id -> gain`` (gains 1..3).
        k: a cut-off in ``1..length``.
    """

    recommended: NDArray[np.int64]
    relevant: list[Any]
    k: int


class VectorCase(NamedTuple):
    """Lists of item indices and the item vectors they index.

    Attributes:
        recommended_idx: ``(n_queries, k)`` int64 indices, ``PAD_IDX`` at the tail.
        item_vectors: ``(n_items, dim)`` float64.
    """

    recommended_idx: NDArray[np.int64]
    item_vectors: NDArray[np.float64]


@st.composite
def ranking_cases(
    draw: st.DrawFn,
    *,
    max_queries: int = 6,
    max_items: int = 20,
    max_length: int = 10,
    graded: bool = False,
    duplicates: bool = True,
    padding: bool = True,
    min_relevant: int = 0,
) -> RankingCase:
    """Random top lists (optionally with repeated ids and tail padding) and relevance.

    Args:
        max_queries, max_items, max_length: upper bounds of the drawn sizes.
        graded: relevance as dicts ``id -> gain`` with integer gains 1..3.
        duplicates: allow an id to appear more than once in a list.
        padding: allow lists shorter than the row length (tail padded with ``PAD_ID``).
        min_relevant: least relevant ids per query (capped at the number of items).
    """
    n_items = draw(st.integers(1, max_items))
    n_queries = draw(st.integers(1, max_queries))
    length = draw(st.integers(1, max_length))
    k = draw(st.integers(1, length))
    item = st.integers(ID_OFFSET, ID_OFFSET + n_items - 1)
    rows = []
    for _ in range(n_queries):
        cap = length if duplicates else min(length, n_items)
        n_real = draw(st.integers(0 if padding else cap, cap))
        row = draw(st.lists(item, min_size=n_real, max_size=n_real, unique=not duplicates))
        rows.append(row + [PAD_ID] * (length - n_real))
    relevant: list[Any] = []
    for _ in range(n_queries):
        ids = draw(st.sets(item, min_size=min(min_relevant, n_items), max_size=n_items))
        if graded:
            gains = draw(st.lists(st.integers(1, 3), min_size=len(ids), max_size=len(ids)))
            relevant.append({i: float(g) for i, g in zip(sorted(ids), gains, strict=True)})
        else:
            relevant.append(ids)
    return RankingCase(np.asarray(rows, dtype=np.int64).reshape(n_queries, length), relevant, k)


@st.composite
def perfect_ranking_cases(
    draw: st.DrawFn,
    *,
    max_queries: int = 6,
    max_relevant: int = 12,
    max_filler: int = 6,
    graded: bool = False,
) -> RankingCase:
    """Lists that start with every relevant id in descending gain order, then non-relevant
    fillers; each query has at least one relevant id. Any ``k`` is an ideal cut-off."""
    n_queries = draw(st.integers(1, max_queries))
    n_relevant = [draw(st.integers(1, max_relevant)) for _ in range(n_queries)]
    n_filler = [draw(st.integers(0, max_filler)) for _ in range(n_queries)]
    length = max(r + f for r, f in zip(n_relevant, n_filler, strict=True))
    k = draw(st.integers(1, length))
    rows: list[list[int]] = []
    relevant: list[Any] = []
    for r, f in zip(n_relevant, n_filler, strict=True):
        ids = [ID_OFFSET + j for j in draw(st.permutations(range(r + f)))]
        rel_ids, filler = ids[:r], ids[r:]
        if graded:
            gains = sorted(draw(st.lists(st.integers(1, 3), min_size=r, max_size=r)),
                           reverse=True)
            relevant.append({i: float(g) for i, g in zip(rel_ids, gains, strict=True)})
        else:
            relevant.append(set(rel_ids))
        rows.append(rel_ids + filler + [PAD_ID] * (length - r - f))
    return RankingCase(np.asarray(rows, dtype=np.int64), relevant, k)


@st.composite
def vector_cases(
    draw: st.DrawFn,
    *,
    max_queries: int = 5,
    max_items: int = 12,
    max_length: int = 6,
    max_dim: int = 5,
    nonnegative: bool = False,
) -> VectorCase:
    """Index lists (with repeats and tail padding) over random item vectors.

    Vectors hold small integers (exact arithmetic, zero vectors included) in ``[-3, 3]``,
    or ``[0, 3]`` when ``nonnegative``.
    """
    n_items = draw(st.integers(1, max_items))
    dim = draw(st.integers(1, max_dim))
    vectors = draw(hnp.arrays(np.float64, (n_items, dim),
                              elements=st.integers(0 if nonnegative else -3, 3).map(float)))
    n_queries = draw(st.integers(1, max_queries))
    length = draw(st.integers(1, max_length))
    rows = []
    for _ in range(n_queries):
        n_real = draw(st.integers(0, length))
        row = draw(st.lists(st.integers(0, n_items - 1), min_size=n_real, max_size=n_real))
        rows.append(row + [PAD_IDX] * (length - n_real))
    return VectorCase(np.asarray(rows, dtype=np.int64).reshape(n_queries, length), vectors)
