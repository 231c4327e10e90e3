"""The indexed catalog of a :class:`~sona.search.engine.SearchEngine`, updated in place.

A document lives at a *position* (a slot): the row of every per-document array (ids,
vectors, filter/facet/boost columns, freshness), the tantivy ``pos`` field and the faiss
label. :meth:`LiveCatalog.update` never rewrites a slot: an upserted document gets a new
slot at the end and its old slot becomes a tombstone, removed from tantivy (delete by the
``pos`` term), faiss (:meth:`~sona.search.faiss_index.FaissIndex.remove`), the autocomplete
entries (:class:`~sona.search.suggestions.DocumentSuggestions`), the title tables and the
popularity order, and masked out of filters. So the live slots, in position order, are the
documents :meth:`SearchEngine.updated` (drop, then append) would rebuild from, and a
position a query returned keeps naming the same document version (``document(position)``).
The arrays grow by doubling (amortised O(1) per document); freshness is recomputed for all
documents only when the newest release year changes. Tombstones cost memory and scan time
until the owner rebuilds (:attr:`LiveCatalog.n_dead`).

Concurrency: queries hold :attr:`LiveCatalog.lock` for reading, :meth:`LiveCatalog.update`
holds it for writing, so a query sees the catalog before or after a whole update.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona.search.documents import DOCUMENT_COLUMNS
from sona.search.filters import DocumentArrays
from sona.search.suggestions import DocumentSuggestions
from sona.search.text_index import words

if TYPE_CHECKING:
    from sona.search.autocomplete import Autocomplete
    from sona.search.faiss_index import FaissIndex
    from sona.search.text_index import TextIndex

_ARTICLES = ("the", "a", "an")
_COLUMNS = tuple(f.name for f in fields(DocumentArrays))


def title_key(text: str) -> str:
    """Normalised title for exact lookups: folded words without a leading article."""
    toks = words(text)
    if len(toks) > 1 and toks[0] in _ARTICLES:
        toks = toks[1:]
    return " ".join(toks)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers.

    Reentrant for readers on the same thread (a query's nested read never waits behind a
    queued writer, which would deadlock).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0
        self._local = threading.local()

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock for reading."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._writer or self._waiting:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    @property
    def writing(self) -> bool:
        """Whether a writer holds the lock or waits for it (a new reader would wait)."""
        return self._writer or self._waiting > 0

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock for writing (waits for the readers in flight)."""
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class LiveCatalog:
    """Per-position document state and the indexes over it (see module docstring).

    Args:
        documents: the checked document frame (position = row).
        vectors: its L2-normalised embeddings, ``(n_docs, d)`` float32.
        freshness_tau: years of the freshness decay ``exp(-(newest - year) / tau)``.
        text, index, autocomplete: the indexes built over ``documents``.
    """

    def __init__(self, documents: pd.DataFrame, vectors: NDArray[np.float32],
                 freshness_tau: float, text: TextIndex, index: FaissIndex,
                 autocomplete: Autocomplete) -> None:
        self.lock = ReadWriteLock()
        self.freshness_tau = freshness_tau
        self.text, self.index, self.autocomplete = text, index, autocomplete
        self._rows: list[Any] = list(documents.itertuples(index=False))
        self.n = self.n_live = len(self._rows)
        self._ids = documents["item_id"].to_numpy()
        self._vectors = vectors
        arrays = DocumentArrays.from_documents(documents)
        self._columns = {name: getattr(arrays, name) for name in _COLUMNS}
        self._alive = np.ones(self.n, bool)
        self._fresh = np.zeros(self.n, np.float64)
        self.slot_of: dict[Any, int] = {_plain(i): p for p, i in enumerate(self._ids)}
        self.titles: dict[str, list[int]] = {}
        self.title_words: list[set[str]] = []
        for pos, row in enumerate(self._rows):
            self._index_title(pos, row)
        # positions by descending popularity (ties: lower position first), for the
        # popularity list: the first k allowed rows of this order
        self.by_popularity = np.lexsort((np.arange(self.n), -arrays.popularity))
        self._neg_pop = -arrays.popularity[self.by_popularity]
        self._coverage = {name: int(np.count_nonzero(flag)) for name, flag in
                          self._coverage_flags(arrays, slice(None)).items()}
        self.newest: float = 0.0
        self._refresh(0)
        self._suggestions: DocumentSuggestions | None = None  # made by the first update
        self._frame: pd.DataFrame | None = documents
        self._arrays: DocumentArrays | None = arrays

    # --- views -----------------------------------------------------------------------
    @property
    def ids(self) -> NDArray[Any]:
        """Item id of every position (tombstones keep theirs)."""
        return self._ids[: self.n]

    @property
    def vectors(self) -> NDArray[np.float32]:
        """``(n_positions, d)`` normalised embeddings."""
        return self._vectors[: self.n]

    @property
    def arrays(self) -> DocumentArrays:
        """Filter/facet/boost columns of every position."""
        if self._arrays is None:
            self._arrays = DocumentArrays(**{k: v[: self.n] for k, v in self._columns.items()})
        return self._arrays

    @property
    def freshness(self) -> NDArray[np.float64]:
        """Freshness boost of every position (0 for tombstones)."""
        return self._fresh[: self.n]

    @property
    def alive(self) -> NDArray[np.bool_]:
        """Whether each position holds a live document."""
        return self._alive[: self.n]

    @property
    def n_dead(self) -> int:
        """Tombstones (positions of removed or replaced documents)."""
        return self.n - self.n_live

    @property
    def newest_year(self) -> int | None:
        """Newest release year among live documents (None when none has one)."""
        return int(self.newest) if self.newest else None

    @property
    def coverage(self) -> dict[str, bool]:
        """Whether any live document has data for each optional filter field."""
        return {name: count > 0 for name, count in self._coverage.items()}

    def row(self, pos: int) -> Any:
        """The document row (``itertuples``) at ``pos``; fixed for the position's life."""
        return self._rows[pos]

    def title(self, pos: int) -> str:
        """Display title at ``pos``."""
        return str(self._rows[pos].title)

    def documents(self) -> pd.DataFrame:
        """The live documents in position order (what a rebuild would index)."""
        if self._frame is None:
            rows = [r for r, a in zip(self._rows, self._alive[: self.n], strict=True) if a]
            self._frame = pd.DataFrame(rows, columns=list(DOCUMENT_COLUMNS))
        return self._frame

    def live_vectors(self) -> NDArray[np.float32]:
        """Embeddings of :meth:`documents`, row for row."""
        return self.vectors if not self.n_dead else self.vectors[self.alive]

    def slots(self, item_ids: list[Any]) -> NDArray[np.int64]:
        """Live positions of ``item_ids`` (-1 for unknown ones)."""
        get = self.slot_of.get
        return np.fromiter((get(i, -1) for i in item_ids), np.int64, len(item_ids))

    @property
    def integer_ids(self) -> bool:
        """Whether item ids are integers (MovieLens files) rather than catalog strings."""
        return self._ids.dtype.kind in "iu"

    # --- update ----------------------------------------------------------------------
    def update(self, documents: pd.DataFrame | None, vectors: NDArray[np.float32] | None,
               removed: list[Any]) -> None:
        """Replace or add ``documents`` (checked, with their normalised ``vectors``) and
        drop the live documents with ids in ``removed``; the caller holds the write lock.

        Cost: proportional to the changed documents (plus an O(n) vectorised freshness
        pass when the newest release year changes, and amortised array growth).
        """
        new_rows = list(documents.itertuples(index=False)) if documents is not None else []
        gone = {self.slot_of[i] for i in map(_plain, removed) if i in self.slot_of}
        gone |= {self.slot_of[i] for i in (_plain(r.item_id) for r in new_rows)
                 if i in self.slot_of}
        if not gone and not new_rows:
            return
        if self._suggestions is None:
            self._suggestions = DocumentSuggestions(
                self.autocomplete, ((p, r) for p, r in enumerate(self._rows)
                                    if self._alive[p]))
        start = self.n
        added = list(enumerate(new_rows, start))
        if new_rows:
            self._grow(len(new_rows), documents, vectors)
        self.text.update([(p, self._rows[p]) for p in sorted(gone)], added)
        if gone:
            self.index.remove(np.array(sorted(gone), np.int64))
        if new_rows:
            self.index.add(np.arange(start, start + len(new_rows), dtype=np.int64),
                           self._vectors[start:start + len(new_rows)])
        self._suggestions.update(sorted(gone), added)
        for pos in sorted(gone):
            self._drop(pos)
        for pos, row in added:
            self._rows.append(row)
            self.slot_of[_plain(row.item_id)] = pos
            self._index_title(pos, row)
            self._insert_popularity(pos)
        self.n = start + len(new_rows)
        self.n_live += len(new_rows) - len(gone)
        for name, flag in self._coverage_flags(self._columns, slice(start, self.n)).items():
            self._coverage[name] += int(np.count_nonzero(flag))
        self._refresh(start)
        self._frame = None
        self._arrays = None

    def _grow(self, extra: int, documents: pd.DataFrame, vectors: NDArray[np.float32] | None
              ) -> None:
        """Write the new documents' columns after position ``n`` (doubling the arrays)."""
        need, cap = self.n + extra, len(self._alive)
        if need > cap:
            cap = max(2 * cap, need, 16)
            self._vectors = _resized(self._vectors, cap)
            self._columns = {k: _resized(v, cap) for k, v in self._columns.items()}
            self._alive = _resized(self._alive, cap)
            self._fresh = _resized(self._fresh, cap)
            self._ids = _resized(self._ids, cap)
        new_ids = documents["item_id"].to_numpy()
        if self._ids.dtype.kind in "iu" and new_ids.dtype.kind not in "iu":
            self._ids = self._ids.astype(object)
        span = slice(self.n, need)
        self._ids[span] = new_ids
        self._vectors[span] = vectors
        arrays = DocumentArrays.from_documents(documents)
        for name in _COLUMNS:
            self._columns[name][span] = getattr(arrays, name)
        self._alive[span] = True

    def _drop(self, pos: int) -> None:
        row = self._rows[pos]
        self._alive[pos] = False
        self._fresh[pos] = 0.0
        item = _plain(row.item_id)
        if self.slot_of.get(item) == pos:
            del self.slot_of[item]
        for t in (row.title, *row.alternate_titles):
            found = self.titles.get(title_key(t), [])
            if pos in found:
                found.remove(pos)
                if not found:
                    del self.titles[title_key(t)]
        self.title_words[pos] = set()
        at = int(np.flatnonzero(self.by_popularity == pos)[0])
        self.by_popularity = np.delete(self.by_popularity, at)
        self._neg_pop = np.delete(self._neg_pop, at)
        for name, flag in self._coverage_flags(self._columns, slice(pos, pos + 1)).items():
            self._coverage[name] -= int(np.count_nonzero(flag))

    def _index_title(self, pos: int, row: Any) -> None:
        for t in (row.title, *row.alternate_titles):
            self.titles.setdefault(title_key(t), []).append(pos)
        self.title_words.append(set(words(" ".join((row.title, *row.alternate_titles)))))

    def _insert_popularity(self, pos: int) -> None:
        # the newest position is the largest, so it goes after every equal popularity
        neg = -float(self._columns["popularity"][pos])
        at = int(np.searchsorted(self._neg_pop, neg, side="right"))
        self.by_popularity = np.insert(self.by_popularity, at, pos)
        self._neg_pop = np.insert(self._neg_pop, at, neg)

    @staticmethod
    def _coverage_flags(columns: Any, span: slice) -> dict[str, NDArray[np.bool_]]:
        get = (lambda k: columns[k][span]) if isinstance(columns, dict) else \
            (lambda k: getattr(columns, k)[span])
        return {"platforms": get("platform_bits") != 0,
                "runtime": np.isfinite(get("runtime")),
                "maturity": np.isfinite(get("maturity_level")),
                "rating": np.isfinite(get("rating")),
                "year": np.isfinite(get("year"))}

    def _refresh(self, start: int) -> None:
        """Freshness of positions from ``start`` on, or of all when the newest year moved."""
        years = self._columns["year"][: self.n]
        live = years[self._alive[: self.n]]
        newest = float(np.nanmax(live)) if np.isfinite(live).any() else 0.0
        if newest != self.newest:
            self.newest, start = newest, 0
        with np.errstate(invalid="ignore"):
            fresh = np.exp(-(newest - years[start:]) / self.freshness_tau)
        self._fresh[start: self.n] = np.where(self._alive[start: self.n],
                                              np.nan_to_num(fresh, nan=0.0), 0.0)


def _resized(arr: NDArray[Any], cap: int) -> NDArray[Any]:
    out = np.zeros((cap, *arr.shape[1:]), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = ["LiveCatalog", "ReadWriteLock", "title_key"]
