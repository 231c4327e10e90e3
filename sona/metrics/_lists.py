"""Shared input handling for the metrics: padding masks, de-duplication, hit matrices.

Every ranking metric reduces to arrays of shape ``(n_queries, k)`` built here once:
which entries are real (not padding, first occurrence of their id in the row) and which of
those are relevant, with what gain. The metrics themselves are then a few vectorised lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from sona.types import PAD_ID, PAD_STR, Recommendations

RecommendedLike = Recommendations | ArrayLike
"""A ``Recommendations`` or a 2-D array ``(n_queries, >= k)`` of item ids padded with the pad id."""

RelevantLike = Sequence[Any]
"""One entry per query: a set (or list) of relevant ids, or a mapping ``id -> gain``."""


def _is_pad_object(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value == PAD_STR):
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value) or value == PAD_ID)
    return (isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
            and value == PAD_ID)


def pad_mask(ids: NDArray[Any]) -> NDArray[np.bool_]:
    """True where ``ids`` holds padding: -1 (integer ids), "" (string ids), None or NaN."""
    kind = ids.dtype.kind
    if kind in "iu":
        return ids == PAD_ID
    if kind == "f":
        return np.isnan(ids) | (ids == PAD_ID)
    if kind in "US":
        return ids == ids.dtype.type(PAD_STR)
    if kind == "O":
        return np.frompyfunc(_is_pad_object, 1, 1)(ids).astype(bool)
    raise TypeError(f"item ids must be integers or strings, got dtype {ids.dtype}")


def check_k(k: int) -> int:
    """Validate the cut-off ``k`` (a positive integer)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def id_matrix(
    recommended: RecommendedLike, k: int | None = None
) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Top-``k`` columns of ``recommended`` and the mask of its non-padded entries.

    A ``Recommendations`` entry is padding when its score is NaN or its id is the pad id.

    Raises:
        ValueError: not 2-D, or fewer than ``k`` columns.
    """
    if isinstance(recommended, Recommendations):
        ids = np.asarray(recommended.ids)
        valid = recommended.valid
    else:
        ids = np.asarray(recommended)
        valid = None
    if ids.ndim != 2:
        raise ValueError(f"recommended must be 2-D (n_queries, k), got shape {ids.shape}")
    if k is not None:
        k = check_k(k)
        if ids.shape[1] < k:
            raise ValueError(f"recommended has {ids.shape[1]} columns, fewer than k={k}")
        ids = ids[:, :k]
        valid = None if valid is None else valid[:, :k]
    mask = ~pad_mask(ids)
    if valid is not None:
        mask &= valid
    return ids, mask


def key_array(values: list[Any] | NDArray[Any]) -> NDArray[Any]:
    """Ids as an int64 array when all are integers, else as an object array (never str)."""
    if isinstance(values, np.ndarray):
        return values.astype(object) if values.dtype.kind in "US" else values
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    if arr.size and pd.api.types.infer_dtype(arr, skipna=False) == "integer":
        return arr.astype(np.int64)
    return arr


def factorize_ids(
    rec_values: NDArray[Any], other_values: NDArray[Any]
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Integer codes for two id arrays over one shared vocabulary (equal ids, equal codes)."""
    a, b = key_array(rec_values), key_array(other_values)
    if b.size == 0:
        b = b.astype(a.dtype)
    if a.size == 0:
        a = a.astype(b.dtype)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        a, b = a.astype(np.int64), b.astype(np.int64)  # uint64 + int64 would promote to float
    elif a.dtype.kind != b.dtype.kind:
        # never let numpy promote ints to strings (1 would then equal "1")
        a, b = a.astype(object), b.astype(object)
    codes, uniques = pd.factorize(np.concatenate([a, b]))
    codes = codes.astype(np.int64)
    return codes[: a.size], codes[a.size:], len(uniques)


def first_occurrence(keys: NDArray[np.int64], valid: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Mask of valid entries whose key is the first of its kind in its row.

    ``keys`` must already be distinct across rows (they embed the row number).
    """
    flat_pos = np.flatnonzero(valid)
    _, first = np.unique(keys.ravel()[flat_pos], return_index=True)
    keep = np.zeros(valid.size, dtype=bool)
    keep[flat_pos[first]] = True
    return keep.reshape(valid.shape)


def _parse_relevant(
    relevant: RelevantLike, n_queries: int
) -> tuple[NDArray[np.int64], list[Any], NDArray[np.float64]]:
    """Flatten per-query relevance into (query row, id, gain) triples of positive gain."""
    if isinstance(relevant, str | bytes | Mapping) or not hasattr(relevant, "__len__"):
        raise TypeError("relevant must be a sequence with one set or mapping per query")
    if len(relevant) != n_queries:
        raise ValueError(f"relevant has {len(relevant)} entries for {n_queries} queries")
    rows: list[int] = []
    ids: list[Any] = []
    gains: list[float] = []
    for i, rel in enumerate(relevant):
        if isinstance(rel, Mapping):
            keys = list(rel.keys())
            values = np.asarray(list(rel.values()), dtype=np.float64)
            if values.size and (not np.all(np.isfinite(values)) or (values < 0).any()):
                raise ValueError(f"gains must be finite and >= 0 (query {i}: {rel!r})")
            keep = values > 0
            ids.extend(k for k, g in zip(keys, keep, strict=True) if g)
            gains.extend(values[keep].tolist())
            rows.extend([i] * int(keep.sum()))
        elif rel is None or isinstance(rel, str | bytes):
            raise TypeError(f"relevant[{i}] must be a set of ids or a mapping, got {rel!r}")
        else:
            unique = list(dict.fromkeys(rel.tolist() if isinstance(rel, np.ndarray) else rel))
            ids.extend(unique)
            gains.extend([1.0] * len(unique))
            rows.extend([i] * len(unique))
    return np.asarray(rows, dtype=np.int64), ids, np.asarray(gains, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Judged:
    """A batch of top-k lists judged against relevance.

    Attributes:
        hits: ``(n_queries, k)`` bool, True at real, first-occurrence, relevant entries.
        gains: ``(n_queries, k)`` float, the gain of each hit (1 for set relevance), else 0.
        n_relevant: ``(n_queries,)`` number of relevant ids (gain > 0) per query.
        ideal: ``(n_queries, k)`` the query's gains sorted descending, zero-padded (for IDCG).
    """

    hits: NDArray[np.bool_]
    gains: NDArray[np.float64]
    n_relevant: NDArray[np.int64]
    ideal: NDArray[np.float64]

    @property
    def k(self) -> int:
        """List length."""
        return int(self.hits.shape[1])


def judge(recommended: RecommendedLike, relevant: RelevantLike, k: int) -> Judged:
    """Build the hit and gain matrices of ``recommended[:, :k]`` against ``relevant``.

    Padded entries never count; an id repeated within a list counts at its first position
    only; mapping entries with gain 0 are not relevant.
    """
    ids, valid = id_matrix(recommended, k)
    n, k = ids.shape
    rel_rows, rel_ids, rel_gains = _parse_relevant(relevant, n)
    rec_codes, rel_codes, n_codes = factorize_ids(ids[valid], key_array(rel_ids))
    width = max(n_codes, 1)
    rec_keys = np.full((n, k), -1, dtype=np.int64)
    rec_keys[valid] = np.nonzero(valid)[0] * width + rec_codes
    real = valid & first_occurrence(rec_keys, valid)

    rel_keys = rel_rows * width + rel_codes
    order = np.argsort(rel_keys, kind="stable")
    sorted_keys, sorted_gains = rel_keys[order], rel_gains[order]
    gains = np.zeros((n, k), dtype=np.float64)
    if sorted_keys.size:
        lookup = rec_keys[real]
        pos = np.clip(np.searchsorted(sorted_keys, lookup), 0, sorted_keys.size - 1)
        found = sorted_keys[pos] == lookup
        gains[real] = np.where(found, sorted_gains[pos], 0.0)
    hits = gains > 0

    n_relevant = np.bincount(rel_rows, minlength=n).astype(np.int64)
    # ideal ordering: per query, gains descending, truncated to k
    by_gain = np.lexsort((-rel_gains, rel_rows))
    q_sorted = rel_rows[by_gain]
    starts = np.concatenate([[0], np.cumsum(n_relevant)[:-1]]) if n else np.zeros(0, np.int64)
    rank = np.arange(q_sorted.size) - starts[q_sorted] if q_sorted.size else q_sorted
    ideal = np.zeros((n, k), dtype=np.float64)
    top = rank < k
    ideal[q_sorted[top], rank[top]] = rel_gains[by_gain][top]
    return Judged(hits=hits, gains=gains, n_relevant=n_relevant, ideal=ideal)
