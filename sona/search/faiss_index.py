"""faiss-backed vector index: exact ``flat``, inverted-file ``ivf`` or graph ``hnsw`` search.

References: Jégou, Douze & Schmid, "Product quantization for nearest neighbor search"
(TPAMI 2011) for IVF; Malkov & Yashunin, "Efficient and robust approximate nearest neighbor
search using Hierarchical Navigable Small World graphs" (TPAMI 2018) for HNSW.

faiss stores vectors at positions 0..n-1; this wrapper owns the position <-> external id
mapping (an :class:`~sona.data.ids.IdIndex`), so ids may be strings. The serialised faiss
index travels as a uint8 array inside the standard model directory (no pickles, and file
access stays in :mod:`sona.io`). Approximate kinds trade recall for speed: ``nprobe`` (IVF)
and ``ef_search`` (HNSW) are the recall knobs, measured by ``sona bench ann``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray

from sona import io
from sona.config import from_dict, to_dict
from sona.data.ids import IdIndex
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

IndexKind = Literal["flat", "ivf", "hnsw"]


@dataclass(frozen=True, slots=True)
class FaissIndexConfig:
    """Settings of :class:`FaissIndex`; the recall/speed knobs are fields, never literals."""

    kind: IndexKind = "hnsw"  # "flat" (exact), "ivf" (k-means cells) or "hnsw" (graph)
    metric: Metric = "cosine"  # similarity: "cosine" (normalised ip), "ip", or "l2" (-squared dist)
    nlist: int = 1024  # ivf: number of k-means cells (trained on the first add)
    nprobe: int = 16  # ivf: cells visited per query (recall knob)
    hnsw_m: int = 32  # hnsw: graph neighbours per node (memory and recall)
    ef_search: int = 64  # hnsw: candidate list size at query time (recall knob)
    ef_construction: int = 80  # hnsw: candidate list size while building
    seed: int = 42  # ivf: k-means initialisation seed
    kind_of_ids: str = "item"  # what the ids name, used in error messages


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # optional dependency: fail with the fix
        raise ImportError("FaissIndex needs faiss: pip install faiss-cpu") from exc
    return faiss


class FaissIndex:
    """A faiss index with external ids, exclusions and directory save/load.

    Args:
        config: a :class:`FaissIndexConfig` (defaults: HNSW, cosine).
    """

    def __init__(self, config: FaissIndexConfig | None = None) -> None:
        self.config = config if config is not None else FaissIndexConfig()
        self._ids: IdIndex | None = None
        self._index: Any = None
        self._dim = 0
        # positions removed by remove(): skipped by every search (see remove)
        self._removed: NDArray[np.int64] = np.zeros(0, np.int64)
        self._selector: Any = None

    # --- construction -----------------------------------------------------------------

    def _metric_type(self) -> int:
        faiss = _faiss()
        return faiss.METRIC_L2 if self.config.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _build(self, dim: int, first: NDArray[np.float32]) -> Any:
        faiss = _faiss()
        cfg = self.config
        if cfg.kind == "flat":
            return faiss.index_factory(dim, "Flat", self._metric_type())
        if cfg.kind == "ivf":
            if cfg.nlist < 1 or cfg.nprobe < 1:
                raise ValueError(
                    f"ivf needs nlist >= 1 and nprobe >= 1, got {cfg.nlist}, {cfg.nprobe}")
            if len(first) < cfg.nlist:
                raise ValueError(
                    f"ivf with nlist={cfg.nlist} needs at least {cfg.nlist} vectors in the "
                    f"first add to train its cells, got {len(first)}; lower nlist")
            index = faiss.index_factory(dim, f"IVF{cfg.nlist},Flat", self._metric_type())
            ivf = faiss.extract_index_ivf(index)
            ivf.cp.seed = cfg.seed
            index.train(first)
            return index
        if cfg.kind == "hnsw":
            if cfg.hnsw_m < 2 or cfg.ef_search < 1 or cfg.ef_construction < 1:
                raise ValueError(f"hnsw needs hnsw_m >= 2 and ef values >= 1, got {cfg}")
            index = faiss.index_factory(dim, f"HNSW{cfg.hnsw_m},Flat", self._metric_type())
            faiss.downcast_index(index).hnsw.efConstruction = cfg.ef_construction
            return index
        raise ValueError(f"unknown faiss index kind {cfg.kind!r}; expected flat, ivf or hnsw")

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        if self.config.kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = min(self.config.nprobe, self.config.nlist)
        elif self.config.kind == "hnsw":
            faiss.downcast_index(self._index).hnsw.efSearch = self.config.ef_search

    def set_search_params(self, *, nprobe: int | None = None,
                          ef_search: int | None = None) -> None:
        """Change the query-time recall knobs without rebuilding (for recall/latency sweeps).

        Raises:
            ValueError: a value < 1.
        """
        for name, value in (("nprobe", nprobe), ("ef_search", ef_search)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.config = dataclasses.replace(
            self.config,
            nprobe=self.config.nprobe if nprobe is None else nprobe,
            ef_search=self.config.ef_search if ef_search is None else ef_search)
        if self._index is not None:
            self._apply_search_params()

    # --- VectorIndex ------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector dimension (0 before the first add)."""
        return self._dim

    @property
    def ids(self) -> IdIndex:
        """The indexed ids, in insertion order."""
        return (self._ids if self._ids is not None
                else IdIndex(np.zeros(0, np.int64), self.config.kind_of_ids))

    def __len__(self) -> int:
        """Searchable vectors (added minus removed)."""
        return 0 if self._index is None else int(self._index.ntotal) - len(self._removed)

    def remove(self, ids: IdArray) -> None:
        """Remove ``ids`` from every later search; the cost is proportional to ``len(ids)``.

        HNSW graphs cannot delete nodes (faiss has no ``remove_ids`` for them) and a flat
        index's ``remove_ids`` renumbers every later vector, so all kinds do the same: the
        positions are kept in a sorted array and searches pass a faiss ``IDSelector`` that
        skips them, inside the index (the HNSW walk and IVF scan skip them; top-k lists
        stay full). The vectors stay stored until the owner rebuilds the index. A removed
        id cannot be added again (add it under a new id).

        Raises:
            UnknownIdError: an id that was never added.
        """
        pos = np.unique(self.ids.numbers(np.asarray(ids)).astype(np.int64))
        if not len(pos):
            return
        faiss = _faiss()
        removed = np.union1d(self._removed, pos)
        inner = faiss.IDSelectorBatch(removed)
        selector = faiss.IDSelectorNot(inner)
        selector.referenced_objects = [inner]  # keep the wrapped selector alive
        self._removed, self._selector = removed, selector

    def _search_params(self) -> Any:
        """faiss search parameters skipping removed positions (None when there are none)."""
        if self._selector is None:
            return None
        faiss = _faiss()
        if self.config.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=self._selector, efSearch=self.config.ef_search)
        if self.config.kind == "ivf":
            return faiss.SearchParametersIVF(sel=self._selector,
                                             nprobe=min(self.config.nprobe, self.config.nlist))
        return faiss.SearchParameters(sel=self._selector)

    def add(self, ids: IdArray, vectors: NDArray[np.float32]) -> None:
        """Append vectors under new, distinct ids (IVF trains its cells on the first call).

        Raises:
            ValueError: bad shapes, non-finite values, duplicate ids, or too few vectors to
                train ``nlist`` IVF cells.
        """
        check_metric(self.config.metric)
        vecs = prepare(as_vectors(vectors, dim=self._dim), self.config.metric)
        merged = merge_ids(self._ids, ids, len(vecs), self.config.kind_of_ids)
        if len(vecs) == 0:
            return
        if self._index is None:
            self._index = self._build(vecs.shape[1], vecs)
            self._dim = int(vecs.shape[1])
            self._apply_search_params()
        self._index.add(vecs)
        self._ids = merged

    def search(
        self, queries: NDArray[np.float32], k: int, *, exclude: IdArray | None = None
    ) -> Recommendations:
        """Top-``k`` per query; ``exclude`` as in :func:`sona.search.index.exclusion_matrix`.

        Excluded ids are removed after over-fetching ``k`` plus the largest per-query
        exclusion count, so a list is short only when the index has too few vectors.

        Raises:
            ValueError: ``k < 1`` or queries of the wrong dimension.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = prepare(as_vectors(queries, dim=self._dim, name="queries"), self.config.metric)
        n = len(self)
        if n == 0:
            return to_recommendations(np.full((len(q), k), -1), np.full((len(q), k), np.nan),
                                      self.ids, k)
        ex = exclusion_matrix(exclude, len(q), self.ids)
        extra = int(np.diff(ex.indptr).max(initial=0)) if ex is not None else 0
        fetch = min(n, k + extra)
        params = self._search_params()
        dist, labels = (self._index.search(q, fetch) if params is None
                        else self._index.search(q, fetch, params=params))
        labels = labels.astype(np.int64)
        scores = -dist.astype(np.float64) if self.config.metric == "l2" else dist.astype(np.float64)
        drop = labels < 0
        if ex is not None and ex.nnz:
            rows = np.repeat(np.arange(len(q)), fetch)
            cols = np.where(labels < 0, 0, labels).ravel()
            hit = np.asarray(ex[rows, cols]).reshape(labels.shape)
            drop |= hit.astype(bool)
        if drop.any():
            order = np.argsort(drop, axis=1, kind="stable")
            labels = np.take_along_axis(labels, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
            labels[np.take_along_axis(drop, order, axis=1)] = -1
        return to_recommendations(labels, scores, self.ids, k)

    def save(self, path: Any) -> None:
        """Write ``config.yaml``, ``arrays.npz`` (serialised faiss index and the removed
        positions), ``ids.parquet``."""
        arrays: dict[str, np.ndarray] = {"removed": self._removed}
        if self._index is not None:
            arrays["faiss"] = np.asarray(_faiss().serialize_index(self._index), dtype=np.uint8)
        config = {"index": "faiss", "dim": self._dim, **to_dict(self.config)}
        io.save_model_dir(path, config=config, arrays=arrays, ids={"item": self.ids.ids_array})

    @classmethod
    def load(cls, path: Any) -> Self:
        """Read an index written by :meth:`save`."""
        config, arrays, ids = io.load_model_dir(path)
        if config.pop("index", None) != "faiss":
            raise ValueError(f"{path} does not hold a faiss index")
        dim = int(config.pop("dim"))
        index = cls(from_dict(FaissIndexConfig, config))
        if "faiss" in arrays:
            index._index = _faiss().deserialize_index(arrays["faiss"])
            index._dim = dim
            index._ids = IdIndex(ids["item"], kind=index.config.kind_of_ids)
            index._apply_search_params()
            if len(arrays.get("removed", ())):
                index.remove(index.ids.ids(arrays["removed"]))
        return index
