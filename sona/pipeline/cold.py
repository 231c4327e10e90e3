"""Catalog items a fitted pipeline was not trained on: cold items added, items removed, live.

The catalog changes while a pipeline serves: the admin API and platform webhooks create
titles no interaction has touched, and remove others. :meth:`Pipeline.add_items` and
:meth:`Pipeline.remove_items` take those changes into the pipeline's item space without a
refit, the same way offline (a test or notebook calls them on a fitted pipeline and ranks)
and online (the service's catalog listener, :mod:`sona.serving.catalog_items`). A
:class:`CatalogDelta` is that change, kept next to the trained state it extends:

- **Item space.** Cold items are appended after the trained items, so a trained item's
  index never moves and a cold item keeps its index while the pipeline lives (states built
  before an addition stay valid). When the trained ids are integers (MovieLens) the
  extended index holds every id as a string (``"50"``, a UUID): ids come back as the
  strings the API returns; lookups by integer still resolve.
- **Features.** A cold item has its content vector (the pipeline's text encoder over its
  catalog text, :func:`sona.pipeline.features.catalog_item_texts`, or a given vector),
  genres and runtime; its popularity and hour/weekday patterns are 0 (nobody watched it).
- **Scores.** The collaborative and graph sources know nothing of a cold item: they score
  the trained items only, and for a cold item the blend renormalises its weights over the
  sources that do score it, content and context (:func:`sona.pipeline.ranking.blend`).
  That is the per-user rule (weights renormalised over the sources that apply) taken per
  item; the alternative, a missing score counted as the source's minimum, would give a
  cold item at most the content share of the blend, so it could never be recommended.
- **Content graph.** The trained columns keep their exported ``content`` graph (so their
  scores keep the exact bits the evaluation had); cold columns run through ``content_rows``,
  the same arithmetic with the item matrices as inputs, exported once and run in ONNX
  Runtime like every graph.
- **Similar items.** Collaborative cosine between two trained items (what the pipeline
  always served), content cosine wherever a cold item is one side of the pair.
- **Removed items** (trained or cold) are masked like exclusions in every list and in
  similar items; adding one again brings it back (with its new text, for a cold one).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.errors import NotFittedError
from sona.genres import GENRES, map_genres
from sona.models.base import Recommender
from sona.pipeline.features import ContentConfig, ItemFeatures, text_encoder, unit_rows
from sona.pipeline.graphs import graph_bytes
from sona.pipeline.sources import ContentRows, content_buffers
from sona.ranking.context import ContextStats
from sona.types import IndexArray

#: name of the graph scoring cold rows (item matrices as inputs)
ROWS_GRAPH = "content_rows"


@dataclass(frozen=True, eq=False)
class CatalogDelta:
    """Cold items and removed items on top of a fitted pipeline's trained state.

    Attributes:
        trained_items: the item index the pipeline was fitted with.
        trained_seen: ``(n_users, n_trained)`` training interactions.
        trained_features: item features of the trained items.
        ids: cold item ids, in index order after the trained items.
        vectors: ``(m, D)`` unit content vectors of the cold items (zeros: no content).
        genres: ``(m, len(GENRES))`` canonical genre indicators of the cold items.
        runtime: ``(m,)`` minutes, NaN where unknown.
        removed: sorted indices of removed items (trained or cold).
    """

    trained_items: IdIndex
    trained_seen: sp.csr_matrix
    trained_features: ItemFeatures
    ids: tuple[str, ...] = ()
    vectors: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    genres: NDArray[np.bool_] = field(
        default_factory=lambda: np.zeros((0, len(GENRES)), bool))
    runtime: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    removed: IndexArray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_trained(self) -> int:
        """Number of trained items (cold indices start here)."""
        return len(self.trained_items)

    @property
    def n_items(self) -> int:
        """Trained plus cold items."""
        return self.n_trained + len(self.ids)

    @functools.cached_property
    def items(self) -> IdIndex:
        """The extended item index (the trained one while there is no cold item)."""
        if not self.ids:
            return self.trained_items
        trained = self.trained_items.ids_array
        if self.trained_items.is_integer:
            trained = np.asarray([str(i) for i in trained], dtype=object)
        return IdIndex([*trained, *self.ids], kind=self.trained_items.kind)

    @functools.cached_property
    def seen(self) -> sp.csr_matrix:
        """Training interactions with a zero column per cold item."""
        if not self.ids:
            return self.trained_seen
        seen = sp.csr_matrix(self.trained_seen)
        return sp.csr_matrix((seen.data, seen.indices, seen.indptr),
                             shape=(seen.shape[0], self.n_items))

    @functools.cached_property
    def features(self) -> ItemFeatures:
        """Trained features with a row per cold item (no popularity, no time patterns)."""
        f = self.trained_features
        m = len(self.ids)
        if not m:
            return f
        c = f.context
        context = ContextStats(
            np.concatenate([c.popularity, np.zeros(m)]),
            np.vstack([c.hourly, np.zeros((m, c.hourly.shape[1]))]),
            np.vstack([c.weekday, np.zeros((m, c.weekday.shape[1]))]),
            np.concatenate([c.runtime, self.runtime]),
            np.vstack([c.genres, self.genres]))
        return replace(f, vectors=np.vstack([f.vectors, self.vectors]).astype(np.float32),
                       popularity=np.concatenate([f.popularity,
                                                  np.zeros(m, np.float32)]),
                       context=context)

    @functools.cached_property
    def row_buffers(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``Xᵀ (D, m)`` and ``s·A·Xᵀ (r, m)`` of the cold rows (the ``content_rows`` inputs)."""
        f = self.trained_features
        return content_buffers(self.vectors, f.lora_base, f.lora_scaling)

    def with_added(self, item_ids: Sequence[str], vectors: NDArray[np.float32],
                   genres: NDArray[np.bool_], runtime: NDArray[np.float64]) -> CatalogDelta:
        """This delta with ``item_ids`` added (a cold id again: its row replaced; a trained
        id keeps its fitted vector). Every one of them is no longer removed."""
        ids = list(self.ids)
        rows = {i: r for r, i in enumerate(ids)}
        vecs = [*self.vectors] if len(self.ids) else []
        gen, run = [*self.genres], [*self.runtime]
        back: list[int] = []
        trained = self.trained_items.numbers(list(item_ids), missing="negative")
        for item_id, t, vec, g, r in zip(item_ids, trained, vectors, genres, runtime,
                                         strict=True):
            if t >= 0:
                back.append(int(t))
                continue
            row = rows.get(item_id)
            if row is None:
                row = rows[item_id] = len(ids)
                ids.append(item_id)
                vecs.append(vec)
                gen.append(g)
                run.append(r)
            else:
                vecs[row], gen[row], run[row] = vec, g, r
            back.append(self.n_trained + row)
        dim = self.trained_features.dim
        return replace(
            self, ids=tuple(ids),
            vectors=np.asarray(vecs, np.float32).reshape(len(ids), dim),
            genres=np.asarray(gen, bool).reshape(len(ids), len(GENRES)),
            runtime=np.asarray(run, np.float64).reshape(len(ids)),
            removed=np.setdiff1d(self.removed, np.asarray(back, np.int64)))

    def with_removed(self, item_idx: IndexArray) -> CatalogDelta:
        """This delta with the items at ``item_idx`` removed (masked)."""
        return replace(self, removed=np.union1d(self.removed,
                                                np.asarray(item_idx, np.int64)))

    def similarity(self, model: Recommender[Any], item_idx: IndexArray,
                   vectors: NDArray[np.float32]) -> NDArray[np.float64]:
        """``(q, n_items)`` similarity of every item to each query item; NaN: removed.

        ``model`` (the collaborative source) scores pairs of trained items; content cosine
        (``vectors``: all items' unit vectors) every pair with a cold item.
        """
        idx = np.asarray(item_idx, np.int64)
        out = np.asarray(vectors[idx], np.float64) @ np.asarray(vectors, np.float64).T
        trained = idx < self.n_trained
        if trained.any():
            out[np.ix_(trained, np.arange(self.n_trained))] = np.asarray(
                model._similar_items(idx[trained]), np.float64)
        out[:, self.removed] = np.nan
        return out

    def allowed(self, candidates: IndexArray | None,
                exclude_items: IndexArray | None) -> tuple[IndexArray | None,
                                                            IndexArray | None]:
        """A list's ``(candidates, exclude_items)`` with the removed items left out.

        Only one of the two is ever set (the top-k contract), so removed items leave the
        candidates when there are some and join the exclusions otherwise.
        """
        if not len(self.removed):
            return candidates, exclude_items
        if candidates is not None:
            return np.setdiff1d(np.asarray(candidates, np.int64), self.removed), None
        if exclude_items is None:
            return None, self.removed
        return None, np.union1d(np.asarray(exclude_items, np.int64), self.removed)


class CatalogItems:
    """:class:`~sona.pipeline.Pipeline`'s catalog changes: cold items in, removed items out.

    A mixin over the pipeline's fitted attributes (``items_``, ``seen_``, ``features_``,
    ``graphs_``): each change builds a new :class:`CatalogDelta` from the trained state and
    sets the extended attributes from it, so repeated changes never drift.
    """

    config: Any
    items_: IdIndex
    seen_: sp.csr_matrix
    features_: ItemFeatures
    graphs_: dict[str, NDArray[np.uint8]]
    _sessions: dict[str, Any]
    #: cold catalog items added and items removed since fitting (absent: none)
    catalog_delta_: CatalogDelta

    def delta(self) -> CatalogDelta | None:
        """Cold items added and items removed since fitting (None: none ever)."""
        return getattr(self, "catalog_delta_", None)

    def add_items(self, item_ids: Sequence[str], *, texts: Sequence[str] | None = None,
                  vectors: NDArray[np.floating] | None = None,
                  genres: Sequence[Sequence[str]] | None = None,
                  runtimes: Sequence[float | None] | None = None,
                  encoder: Any = None) -> Self:
        """Add catalog items the pipeline was not trained on, ranked through their content.

        The items are appended to the item space (ids as strings), scored by the content
        and context sources only and found by similar items through content cosine (see
        the module docstring). A trained id keeps its fitted vector; an id added before
        gets its new text. None of them stays removed.

        Args:
            item_ids: catalog ids.
            texts: one catalog text per item (:func:`sona.pipeline.features.catalog_item_texts`),
                embedded with the pipeline's text encoder; or
            vectors: ``(n, D)`` content vectors in the trained vectors' space.
            genres: genre labels per item (mapped to the canonical genres).
            runtimes: minutes per item (None: unknown).
            encoder: a loaded text encoder to reuse (default: the config's).

        Returns:
            self, changed in place (the service changes a :meth:`copy` and swaps it in).

        Raises:
            NotFittedError: before ``fit``.
            ValueError: see :func:`cold_vectors`; runtimes or genres of another length.
        """
        delta = self._catalog_delta()
        ids = [str(i) for i in item_ids]
        vecs = cold_vectors(self.config.content, delta.trained_features, len(ids),
                            texts=texts, vectors=vectors, encoder=encoder)
        run = np.full(len(ids), np.nan) if runtimes is None else np.array(
            [np.nan if r is None else float(r) for r in runtimes], np.float64)
        if len(run) != len(ids):
            raise ValueError(f"{len(run)} runtimes for {len(ids)} item ids")
        self._apply_delta(delta.with_added(ids, vecs, genre_rows(genres, len(ids)), run))
        return self

    def remove_items(self, item_ids: Sequence[Any]) -> Self:
        """Mask items (trained or cold) out of every list and similar items from now on.

        Ids the pipeline does not know are ignored (the catalog removed an item it never
        served); :meth:`add_items` brings an item back.

        Raises:
            NotFittedError: before ``fit``.
        """
        delta = self._catalog_delta()
        idx = self.items_.numbers(list(item_ids), missing="negative")
        self._apply_delta(delta.with_removed(idx[idx >= 0]))
        return self

    def copy(self) -> Self:
        """A shallow copy sharing the fitted arrays and models: change it with
        :meth:`add_items` / :meth:`remove_items` while this one keeps serving."""
        out = copy.copy(self)
        out.graphs_ = dict(self.graphs_)
        out._sessions = dict(self._sessions)
        return out

    def trained_copy(self, delta: CatalogDelta) -> Self:
        """A shallow copy without the catalog changes of ``delta`` (what is saved)."""
        out = copy.copy(self)
        del out.catalog_delta_
        out.items_, out.seen_ = delta.trained_items, delta.trained_seen
        out.features_ = delta.trained_features
        out.graphs_ = {k: v for k, v in self.graphs_.items() if k != ROWS_GRAPH}
        out._sessions = {}
        return out

    def _catalog_delta(self) -> CatalogDelta:
        delta = self.delta()
        if delta is not None:
            return delta
        if not hasattr(self, "items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
        return CatalogDelta(self.items_, self.seen_, self.features_)

    def _apply_delta(self, delta: CatalogDelta) -> None:
        if delta.ids and ROWS_GRAPH not in self.graphs_:
            import torch

            f = delta.trained_features
            dims = {"preference": {0: "batch"}, "lora_b": {0: "batch"},
                    "items_t": {1: "items"}, "projected": {1: "items"}}
            example = (torch.zeros(2, f.dim), torch.zeros(2, f.dim, f.lora_rank),
                       torch.zeros(f.dim, 3), torch.zeros(f.lora_rank, 3))
            self.graphs_ = {**self.graphs_, ROWS_GRAPH: graph_bytes(
                ContentRows(), example, list(dims), ["content", "lora"], dims,
                self.config.onnx)}
        self.items_, self.seen_, self.features_ = delta.items, delta.seen, delta.features
        self.catalog_delta_ = delta


def cold_vectors(config: ContentConfig, features: ItemFeatures, n: int, *,
                 texts: Sequence[str] | None, vectors: NDArray[np.floating] | None,
                 encoder: Any = None) -> NDArray[np.float32]:
    """``(n, D)`` unit content vectors of new items, from their texts or given vectors.

    Args:
        config: the pipeline's content config (texts need ``source="text"``).
        features: the trained features (their encoder and dimension must match).
        n: number of items.
        texts: one text per item (:func:`sona.pipeline.features.catalog_item_texts`).
        vectors: ``(n, D)`` vectors in the trained vectors' space instead.
        encoder: a text encoder to reuse (``encode``, ``model_name``, ``model_version``);
            default: the one the config names.

    Raises:
        ValueError: neither or both of texts and vectors; lengths or dimension differ;
            texts for a source other than "text", or an encoder other than the trained one.
    """
    if (texts is None) == (vectors is None):
        raise ValueError("add_items needs either texts or vectors (not both)")
    if vectors is not None:
        out = np.asarray(vectors, np.float32)
        if out.shape != (n, features.dim):
            raise ValueError(f"vectors must have shape ({n}, {features.dim}), got {out.shape}")
        return unit_rows(out)
    assert texts is not None
    if len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} item ids")
    if config.source != "text":
        raise ValueError(f"texts need content source 'text' (the pipeline's is "
                         f"{config.source!r}); pass vectors instead")
    enc = encoder if encoder is not None else text_encoder(config)
    info = features.content_info
    if (info.get("model"), info.get("version")) != (enc.model_name, enc.model_version):
        raise ValueError(f"encoder {enc.model_name} {enc.model_version} differs from the "
                         f"pipeline's {info.get('model')} {info.get('version')}")
    if not n:
        return np.zeros((0, features.dim), np.float32)
    return unit_rows(np.asarray(enc.encode(list(texts)), np.float32))


def genre_rows(genres: Sequence[Sequence[str]] | None, n: int) -> NDArray[np.bool_]:
    """``(n, len(GENRES))`` canonical genre indicators of genre label lists."""
    out = np.zeros((n, len(GENRES)), bool)
    if genres is None:
        return out
    if len(genres) != n:
        raise ValueError(f"{len(genres)} genre lists for {n} item ids")
    for row, labels in enumerate(genres):
        for g in map_genres(list(labels)):
            out[row, GENRES.index(g)] = True
    return out


__all__ = ["ROWS_GRAPH", "CatalogDelta", "CatalogItems", "cold_vectors", "genre_rows"]
