"""Brute-force numpy nearest-neighbour search: the exact reference for every other index.

Queries are scored in batches whose score block stays under ``max_block`` floats, so a
1M-item index is searched without materialising a (queries x items) matrix; top-k and its
tie-breaking (lower position first) come from :func:`sona.ranking.topk`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from sona import io
from sona.config import from_dict, to_dict
from sona.data.ids import IdIndex
from sona.ranking.topk import topk
from sona.search.index import (
    Metric,
    as_vectors,
    check_metric,
    exclusion_matrix,
    merge_ids,
    prepare,
    to_recommendations,
)
from sona.types import IdArray, Recommendations

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExactIndexConfig:
    """Settings of :class:`ExactIndex`."""

    metric: Metric = "cosine"  # similarity: "cosine" (normalised ip), "ip", or "l2" (-squared dist)
    max_block: int = 1 << 24  # most query x item scores held at once (floats; memory bound)
    kind: str = "item"  # what the ids name, used in error messages


class ExactIndex:
    """Exact k-NN over all stored vectors (numpy matrix products).

    Args:
        config: an :class:`ExactIndexConfig` (defaults: cosine).
    """

    def __init__(self, config: ExactIndexConfig | None = None) -> None:
        self.config = config if config is not None else ExactIndexConfig()
        self._ids: IdIndex | None = None
        self._vectors: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    @property
    def dim(self) -> int:
        """Vector dimension (0 before the first add)."""
        return int(self._vectors.shape[1])

    @property
    def ids(self) -> IdIndex:
        """The indexed ids, in insertion order."""
        if self._ids is None:
            return IdIndex(np.zeros(0, np.int64), self.config.kind)
        return self._ids

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def add(self, ids: IdArray, vectors: NDArray[np.float32]) -> None:
        """Append vectors under new, distinct ids.

        Raises:
            ValueError: bad shapes, non-finite values, or duplicate ids.
        """
        check_metric(self.config.metric)
        vecs = prepare(as_vectors(vectors, dim=self.dim), self.config.metric)
        self._ids = merge_ids(self._ids, ids, len(vecs), self.config.kind)
        self._vectors = vecs if len(self) == 0 else np.concatenate([self._vectors, vecs])

    def search(
        self, queries: NDArray[np.float32], k: int, *, exclude: IdArray | None = None
    ) -> Recommendations:
        """Exact top-``k`` per query (see :func:`sona.search.index.exclusion_matrix` for exclude).

        Raises:
            ValueError: ``k < 1`` or queries of the wrong dimension.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = prepare(as_vectors(queries, dim=self.dim, name="queries"), self.config.metric)
        ex = exclusion_matrix(exclude, len(q), self.ids)
        n = len(self)
        if n == 0:
            return to_recommendations(np.full((len(q), k), -1), np.full((len(q), k), np.nan),
                                      self.ids, k)
        step = max(1, self.config.max_block // n)
        out_idx, out_scores = [], []
        sq_norms = (self._vectors ** 2).sum(axis=1) if self.config.metric == "l2" else None
        for start in range(0, len(q), step):
            block = q[start:start + step]
            scores = block @ self._vectors.T
            if sq_norms is not None:
                # -||q - x||^2 = 2 q.x - ||x||^2 - ||q||^2
                scores = 2 * scores - sq_norms[None, :] - (block ** 2).sum(axis=1)[:, None]
            idx, top = topk(scores, min(k, n),
                            exclude=ex[start:start + step] if ex is not None else None)
            out_idx.append(idx)
            out_scores.append(top)
        return to_recommendations(np.concatenate(out_idx), np.concatenate(out_scores), self.ids, k)

    def vectors(self, ids: IdArray) -> NDArray[np.float32]:
        """Stored (metric-prepared) vectors of ``ids``; raises ``UnknownIdError`` if absent."""
        return self._vectors[self.ids.numbers(ids)]

    def save(self, path: Any) -> None:
        """Write ``config.yaml``, ``arrays.npz`` (vectors) and ``ids.parquet`` to ``path``."""
        io.save_model_dir(path, config={"index": "exact", **to_dict(self.config)},
                          arrays={"vectors": self._vectors}, ids={"item": self.ids.ids_array})

    @classmethod
    def load(cls, path: Any) -> Self:
        """Read an index written by :meth:`save`."""
        config, arrays, ids = io.load_model_dir(path)
        if config.pop("index", None) != "exact":
            raise ValueError(f"{path} does not hold an exact index")
        index = cls(from_dict(ExactIndexConfig, config))
        vecs = arrays["vectors"].astype(np.float32)
        if len(vecs):
            index._ids = IdIndex(ids["item"], kind=index.config.kind)
            index._vectors = vecs
        return index
