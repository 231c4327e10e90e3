"""The ``VectorIndex`` protocol and the helpers every index implementation shares.

An index maps external ids (ints or strings, as in :class:`~sona.data.ids.IdIndex`) to
float32 vectors of one dimension and answers batched k-nearest-neighbour queries with a
:class:`~sona.types.Recommendations` (higher score = closer), so item-to-item similarity,
candidate retrieval and text search all consume the same shape that models return.

Metrics (``metric`` field of each index):

- ``"cosine"`` (default): vectors and queries are L2-normalised, score = inner product.
- ``"ip"``: raw inner product (e.g. ALS factors, where the norm carries popularity).
- ``"l2"``: score = minus the squared Euclidean distance, so scores still sort descending.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.types import IdArray, Recommendations

Metric = Literal["ip", "cosine", "l2"]
METRICS: tuple[str, ...] = ("ip", "cosine", "l2")


@runtime_checkable
class VectorIndex(Protocol):
    """A k-nearest-neighbour index over id-labelled vectors (see module docstring)."""

    @property
    def dim(self) -> int:
        """Vector dimension (0 before the first :meth:`add`)."""
        ...

    def __len__(self) -> int:
        """Number of indexed vectors."""
        ...

    def add(self, ids: IdArray, vectors: NDArray[np.float32]) -> None:
        """Index ``vectors`` (shape ``(n, d)``) under the distinct external ``ids``."""
        ...

    def search(
        self, queries: NDArray[np.float32], k: int, *, exclude: IdArray | None = None
    ) -> Recommendations:
        """Top-``k`` ids and scores for each query row (shape ``(m, d)`` -> ``(m, k)``)."""
        ...

    def save(self, path: Any) -> None:
        """Write the index to the directory ``path``."""
        ...

    @classmethod
    def load(cls, path: Any) -> Self:
        """Read an index written by :meth:`save`."""
        ...


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def as_vectors(
    vectors: Any, *, dim: int | None = None, name: str = "vectors"
) -> NDArray[np.float32]:
    """Validate and convert to a C-contiguous float32 ``(n, d)`` array.

    Raises:
        ValueError: not 2-D, wrong dimension, or non-finite values.
    """
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    if dim is not None and dim > 0 and arr.shape[1] != dim:
        raise ValueError(f"{name} have dimension {arr.shape[1]}, the index has {dim}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} has a NaN or infinite value")
    return arr


def prepare(vectors: NDArray[np.float32], metric: str) -> NDArray[np.float32]:
    """Apply the metric's preprocessing: L2-normalise rows for ``"cosine"`` (zero rows stay 0)."""
    if metric != "cosine":
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def merge_ids(current: IdIndex | None, new_ids: IdArray, n_vectors: int, kind: str) -> IdIndex:
    """Append ``new_ids`` to ``current`` (positions follow insertion order).

    Raises:
        ValueError: length mismatch with the vectors, or an id already indexed / repeated.
    """
    arr = np.asarray(new_ids)
    if arr.ndim != 1 or len(arr) != n_vectors:
        raise ValueError(f"{len(arr) if arr.ndim == 1 else arr.shape} ids for {n_vectors} vectors")
    if current is None or len(current) == 0:
        return IdIndex(arr, kind=kind)
    if current.is_integer != (arr.dtype.kind in "iu"):
        raise ValueError(f"cannot mix integer and string {kind} ids in one index")
    return IdIndex(np.concatenate([current.ids_array, arr.astype(current.ids_array.dtype)]),
                   kind=kind)


def exclusion_matrix(exclude: IdArray | None, n_queries: int, ids: IdIndex) -> sp.csr_matrix | None:
    """Turn ``exclude`` into a ``(n_queries, len(ids))`` CSR of positions to drop.

    ``exclude`` is either a 1-D id array removed from every query's results, or a 2-D array
    with one row of ids per query (padded with the pad id, e.g. each query item itself for
    similar-item lookups). Ids that are not indexed cannot be returned anyway and are ignored.
    """
    if exclude is None:
        return None
    arr = np.asarray(exclude)
    if arr.ndim == 1:
        pos = ids.numbers(arr, missing="negative")
        pos = np.unique(pos[pos >= 0])
        rows = np.repeat(np.arange(n_queries), len(pos))
        cols = np.tile(pos, n_queries)
    elif arr.ndim == 2:
        if arr.shape[0] != n_queries:
            raise ValueError(f"exclude has {arr.shape[0]} rows for {n_queries} queries")
        pos = ids.numbers(arr, missing="negative").reshape(arr.shape)
        rows = np.repeat(np.arange(n_queries), arr.shape[1])
        cols = pos.ravel()
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
    else:
        raise ValueError(f"exclude must be 1-D or 2-D, got shape {arr.shape}")
    data = np.ones(len(rows), dtype=np.int8)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(n_queries, len(ids)))
    mat.sum_duplicates()
    return mat


def to_recommendations(idx: NDArray[np.int64], scores: NDArray[np.floating], ids: IdIndex,
                       k: int) -> Recommendations:
    """Map positions (``-1`` = padding) to external ids, padding/truncating to ``k`` columns."""
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    n, width = idx.shape
    if width < k:
        idx = np.pad(idx, ((0, 0), (0, k - width)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, k - width)), constant_values=np.nan)
    idx, scores = idx[:, :k], scores[:, :k].copy()
    scores[idx < 0] = np.nan
    if len(ids) == 0:
        out = np.full(idx.shape, ids.pad, dtype=object if not ids.is_integer else np.int64)
        return Recommendations(out, np.full(idx.shape, np.nan))
    return Recommendations(ids.ids(idx), scores)
