"""Candidate retrieval and scoring for :class:`~sona.search.engine.SearchEngine`.

:class:`Retriever` turns a query into ranked candidate lists: BM25 (tantivy, filters
inside the index), vector (faiss; with a selective filter, exact search over the allowed
rows instead, the original's pre-filter rule), the neighbours of referenced titles ("like
X") and the most popular allowed items. :func:`score_candidates` fuses them (RRF or
weighted sum), applies the ranking config, mood bonuses and personalisation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sona.errors import UnknownIdError
from sona.genres import GENRES
from sona.search.facets import facet_counts
from sona.search.filters import DocumentArrays, SearchFilters
from sona.search.fusion import personalize, rerank, rrf, union
from sona.search.intent import ParsedQuery, parse_query, without_references
from sona.search.live import LiveCatalog, title_key
from sona.search.text_index import TextIndex

if TYPE_CHECKING:
    from sona.search.engine import SearchConfig
    from sona.search.faiss_index import FaissIndex

# parse_query is a pure function of (query, reference year) and ~50 regex searches a call:
# memoised, a repeated query skips them (issue 12); results are frozen, never mutated
_parse_query = functools.lru_cache(maxsize=4096)(parse_query)

_EMPTY_POS = np.zeros(0, np.int64)
_EMPTY_SCORES = np.zeros(0, np.float64)


@dataclass(frozen=True, slots=True)
class RrfWeights:
    """Weights of the ranked lists in RRF (SPEC §3.1: vector 0.35, keyword 0.20, graph 0.30,
    popularity 0.15; "graph" is the list of neighbours of referenced titles)."""

    vector: float = 0.35  # semantic list
    keyword: float = 0.20  # BM25 list
    graph: float = 0.30  # neighbours of "like <title>" references
    popularity: float = 0.15  # most popular allowed items


@dataclass
class Candidates:
    """Ranked lists of one query (positions into the document frame)."""

    parsed: ParsedQuery
    filters: SearchFilters
    query_vector: NDArray[np.float32] | None = None
    keyword: tuple[NDArray[np.int64], NDArray[np.float64]] = (_EMPTY_POS, _EMPTY_SCORES)
    vector: tuple[NDArray[np.int64], NDArray[np.float64]] = (_EMPTY_POS, _EMPTY_SCORES)
    reference: tuple[NDArray[np.int64], NDArray[np.float64]] = (_EMPTY_POS, _EMPTY_SCORES)
    popular: NDArray[np.int64] = field(default_factory=lambda: _EMPTY_POS)
    reference_titles: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """Whether no strategy returned anything."""
        return not (len(self.keyword[0]) or len(self.vector[0]) or len(self.reference[0])
                    or len(self.popular))


class Retriever:
    """Query-time retrieval over built indexes (stateless per request).

    Reads the engine's :class:`~sona.search.live.LiveCatalog`, shared by every
    :meth:`~sona.search.engine.SearchEngine.with_config` view; callers hold its read lock.
    """

    def __init__(self, config: SearchConfig, live: LiveCatalog) -> None:
        self.config = config
        self.live = live

    @property
    def vectors(self) -> NDArray[np.float32]:
        """Normalised document embeddings (row = position)."""
        return self.live.vectors

    @property
    def arrays(self) -> DocumentArrays:
        """Filter/facet/boost columns (row = position)."""
        return self.live.arrays

    @property
    def text(self) -> TextIndex:
        """The keyword index."""
        return self.live.text

    @property
    def index(self) -> FaissIndex:
        """The vector index (labels = positions)."""
        return self.live.index

    @property
    def titles(self) -> dict[str, list[int]]:
        """:func:`title_key` of every title and alternate title -> live positions."""
        return self.live.titles

    @property
    def title_words(self) -> list[set[str]]:
        """Words of each position's titles."""
        return self.live.title_words

    @property
    def newest_year(self) -> int:
        """Newest release year of the catalog (2026 when none is known)."""
        return self.live.newest_year or 2026

    @property
    def by_popularity(self) -> NDArray[np.int64]:
        """Live positions by descending popularity (ties: lower position first)."""
        return self.live.by_popularity

    @property
    def coverage(self) -> dict[str, bool]:
        """Whether any live document has data for each optional filter field."""
        return self.live.coverage

    def position(self, item_id: Any) -> int:
        """Row of ``item_id`` (raises UnknownIdError).

        Catalog ids are strings; a MovieLens id given as an int (model item ids of an
        integer interaction log) names the same item (``50`` and ``"50"``).
        """
        slot_of = self.live.slot_of
        pos = slot_of.get(item_id)
        if pos is None:
            pos = slot_of.get(str(item_id))
        if pos is None:
            raise UnknownIdError("item", [item_id])
        return int(pos)

    # --- intent ----------------------------------------------------------------------
    def _known_title(self, query: str) -> bool:
        if title_key(query) in self.titles:
            return True
        _, searched = self.text.rewrite(query)
        wanted = set(searched)
        top, _ = self.text.search(query, 5)
        return bool(wanted) and any(wanted <= self.title_words[p] for p in top)

    def parse(self, query: str, *, use_intent: bool) -> ParsedQuery:
        """Parse intent unless the query names a title (then it is a known-item search)."""
        if not use_intent:
            return ParsedQuery(original=query, text=query)
        parsed = _parse_query(query, reference_year=self._newest_year())
        if parsed.has_intent and not parsed.references and self._known_title(query):
            return ParsedQuery(original=query, text=query)
        return parsed

    def _newest_year(self) -> int:
        return self.newest_year

    def resolve(self, reference: str) -> int | None:
        """Position of the title a "like <reference>" names, or None."""
        exact = self.titles.get(title_key(reference))
        if exact:
            return max(exact, key=lambda p: self.arrays.popularity[p])
        _, searched = self.text.rewrite(reference)
        top, _ = self.text.search(reference, 3)
        for p in top:
            if searched and set(searched) <= self.title_words[p]:
                return int(p)
        return None

    def _uncovered(self, filters: SearchFilters) -> tuple[SearchFilters, list[str]]:
        """Drop intent filters on fields this catalog has no data for (e.g. platforms)."""
        drop: dict[str, Any] = {}
        if filters.platforms and not self.coverage["platforms"]:
            drop["platforms"] = ()
        if (filters.runtime_min, filters.runtime_max) != (None, None) and \
                not self.coverage["runtime"]:
            drop.update(runtime_min=None, runtime_max=None)
        if filters.max_maturity is not None and not self.coverage["maturity"]:
            drop["max_maturity"] = None
        ignored = sorted({k.split("_")[0] if k != "max_maturity" else "maturity" for k in drop})
        return dataclasses.replace(filters, **drop), ignored

    # --- retrieval -------------------------------------------------------------------
    def retrieve(self, text: str, explicit: SearchFilters, *, mode: str, use_intent: bool,
                 query_vector: Callable[[str], NDArray[np.float32]]) -> Candidates:
        """Ranked candidate lists for ``text`` under ``explicit`` request filters."""
        parsed = self.parse(text, use_intent=use_intent)
        refs, titles, unresolved = [], [], []
        for ref in parsed.references:
            pos = self.resolve(ref)
            if pos is None:
                unresolved.append(ref)
            else:
                refs.append(pos)
                titles.append(self.live.title(pos))
        parsed = without_references(parsed, unresolved)
        intent_filters, ignored = self._uncovered(parsed.filters)
        notes: dict[str, Any] = {}
        if ignored:
            notes["ignored_filters"] = ignored
        if titles:
            notes["resolved_references"] = titles
        filters = explicit.merged(intent_filters)
        cands = self._retrieve(parsed, filters, refs, mode, query_vector)
        if cands.is_empty() and not intent_filters.is_empty():
            relaxed = filters
            if intent_filters.genre_mode == "all" and len(intent_filters.genres) > 1 \
                    and not explicit.genres:
                relaxed = dataclasses.replace(filters, genre_mode="any")
                cands = self._retrieve(parsed, relaxed, refs, mode, query_vector)
            if cands.is_empty():
                cands = self._retrieve(parsed, explicit, refs, mode, query_vector)
            notes["relaxed"] = True
        cands.reference_titles = titles
        cands.notes = notes
        return cands

    def _retrieve(self, parsed: ParsedQuery, filters: SearchFilters, refs: list[int],
                  mode: str, query_vector: Callable[[str], NDArray[np.float32]]
                  ) -> Candidates:
        ref_pos = np.array(refs, dtype=np.int64)
        excluded = np.unique(np.concatenate([ref_pos, self._excluded_ids(filters),
                                             self._not_allowed(filters)]))
        mask = self.arrays.mask(filters, excluded)
        if self.live.n_dead:
            mask &= self.live.alive
        out = Candidates(parsed=parsed, filters=filters)
        n_allowed = int(mask.sum())
        if n_allowed == 0:
            return out
        k = self.config.top_k
        # pure-intent queries ("90s sci-fi comedies") search their genre words; a resolved
        # "like X" with no other text leaves keyword search out (X itself is excluded)
        keyword_text = parsed.text or ("" if len(ref_pos) else parsed.original)
        if mode in ("hybrid", "keyword") and keyword_text:
            out.keyword = self.text.search(keyword_text, k, filters=filters, excluded=excluded)
        if mode in ("hybrid", "vector"):
            q = query_vector(parsed.original)
            if len(ref_pos):
                q = q + self.vectors[ref_pos].mean(axis=0)
                q = (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)
            out.query_vector = q
            out.vector = self._vector_search(q, mask, n_allowed, k)
        if mode == "hybrid":
            if len(ref_pos):
                rq = self.vectors[ref_pos].mean(axis=0)
                rq = (rq / max(float(np.linalg.norm(rq)), 1e-12)).astype(np.float32)
                out.reference = self._vector_search(rq, mask, n_allowed, k)
            order = self.by_popularity
            out.popular = order[mask[order]][:k].astype(np.int64)
        return out

    def _excluded_ids(self, filters: SearchFilters) -> NDArray[np.int64]:
        if not filters.exclude_ids:
            return _EMPTY_POS
        pos = self.live.slots(list(filters.exclude_ids))
        return pos[pos >= 0]

    def _not_allowed(self, filters: SearchFilters) -> NDArray[np.int64]:
        """Positions outside ``filters.only_ids`` (none when it is unset)."""
        if filters.only_ids is None:
            return _EMPTY_POS
        ids: list[Any] = list(filters.only_ids)
        if self.live.integer_ids:  # MovieLens ids: the catalog's "50" is 50
            ids = [int(i) for i in ids if str(i).isdigit()]
        pos = self.live.slots(ids)
        keep = np.zeros(self.live.n, bool)
        keep[pos[pos >= 0]] = True
        return np.flatnonzero(~keep).astype(np.int64)

    def _vector_search(self, q: NDArray[np.float32], mask: NDArray[np.bool_], n_allowed: int,
                       k: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        n = self.live.n_live  # tombstones are masked out and not in the faiss index
        if n_allowed < n and n_allowed / n < self.config.prefilter_selectivity:
            return self._exact(q, np.flatnonzero(mask), k)
        fetch = min(n, k if n_allowed == n else k * self.config.over_query)
        recs = self.index.search(q[None, :], fetch)
        valid = recs.valid[0]
        pos = recs.ids[0][valid].astype(np.int64)
        scores = recs.scores[0][valid].astype(np.float64)
        keep = mask[pos]
        pos, scores = pos[keep], scores[keep]
        if len(pos) < min(k, n_allowed):
            return self._exact(q, np.flatnonzero(mask), k)
        return pos[:k], scores[:k]

    def _exact(self, q: NDArray[np.float32], allowed: NDArray[np.int64], k: int
               ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        scores = self.vectors[allowed] @ q
        take = min(k, len(allowed))
        top = np.argpartition(-scores, take - 1)[:take] if take < len(allowed) else \
            np.arange(len(allowed))
        order = top[np.lexsort((allowed[top], -scores[top]))]
        return allowed[order], scores[order].astype(np.float64)

    def facets(self, positions: NDArray[np.int64]) -> dict[str, list[dict[str, Any]]]:
        """Facet counts over the fused result positions."""
        return facet_counts(self.arrays, positions)


@dataclass
class Ranked:
    """Final ranking of one query: positions best first with their component scores.

    The per-result parts (similarities, BM25 scores, match reasons) are looked up for the
    rows of a page only: building them for every fused candidate (up to
    ``max_candidates``) was a measurable share of a warm search (issue 12).
    """

    positions: NDArray[np.int64]
    scores: NDArray[np.float64]
    vector_sim: Callable[[int, int], float | None]  # (rank, position) -> cosine or None
    keyword: Callable[[int], float | None]  # position -> BM25 score or None
    reasons: Callable[[int], tuple[str, ...]]

    def rows(self, lo: int, hi: int) -> list[tuple[int, float, float | None, float | None,
                                                   tuple[str, ...]]]:
        """``(position, score, vector_similarity, keyword_score, reasons)`` for a page."""
        positions = self.positions[lo:hi].tolist()
        scores = self.scores[lo:hi].tolist()
        return [(p, s, self.vector_sim(rank, p), self.keyword(p), self.reasons(p))
                for rank, (p, s) in enumerate(zip(positions, scores, strict=True), start=lo)]


def _score_of(positions: NDArray[np.int64], scores: NDArray[Any]
              ) -> Callable[[int], float | None]:
    """``position -> float(score)`` (None when absent); the table is built on first use."""
    table: dict[int, float] = {}

    def get(p: int) -> float | None:
        if not table and len(positions):
            table.update(zip(positions.tolist(), np.asarray(scores).tolist(), strict=True))
        return table.get(p)

    return get


def score_candidates(config: SearchConfig, c: Candidates, *, mode: str, fusion: str,
                     freshness: NDArray[np.float64], user_vector: NDArray[np.float32] | None,
                     boost: float, vectors: NDArray[np.float32], arrays: DocumentArrays
                     ) -> Ranked:
    """Fuse, re-rank and personalise the candidate lists of one query."""
    kw_pos, kw_scores = c.keyword
    vec_pos, vec_scores = c.vector
    if mode == "keyword":
        cand, final = kw_pos, kw_scores.copy()
    elif mode == "vector":
        cand, final = vec_pos, vec_scores.copy()
    else:
        cand = union([vec_pos, kw_pos, c.reference[0], c.popular])
        if fusion == "rrf":
            w = config.rrf_weights
            _, fused = rrf([vec_pos, kw_pos, c.reference[0], c.popular],
                           [w.vector, w.keyword, w.graph, w.popularity],
                           k=config.rrf_k, candidates=cand)
            relevance = {"fused": fused}
        elif fusion == "weighted":
            cos = (vectors[cand] @ c.query_vector).astype(np.float64) \
                if c.query_vector is not None else np.zeros(len(cand))
            bm25 = np.zeros(len(cand))
            if len(kw_pos):  # every keyword position is a candidate (cand is their union)
                by_pos = np.argsort(cand, kind="stable")
                bm25[by_pos[np.searchsorted(cand[by_pos], kw_pos)]] = kw_scores
            relevance = {"vector": cos, "keyword": bm25}
        else:
            raise ValueError(f"unknown fusion {fusion!r}; expected 'rrf' or 'weighted'")
        boosts = {"quality": arrays.quality[cand], "freshness": freshness[cand],
                  "popularity": arrays.popularity[cand]}
        final = rerank(relevance, boosts, config.ranking)
        soft = c.parsed.soft_genres
        if soft and config.soft_genre_weight:
            want = sum(1 << GENRES.index(g) for g in soft)
            bits = arrays.genre_bits[cand] & want
            share = np.array([bin(int(b)).count("1") for b in bits]) / len(soft)
            final = final + config.soft_genre_weight * share
        if user_vector is not None and boost > 0:
            affinity = vectors[cand] @ user_vector
            final = personalize(final, affinity.astype(np.float64), boost)
    order = np.lexsort((np.arange(len(cand)), -final))[: config.max_candidates]
    positions, scores = cand[order].astype(np.int64), final[order]
    vector_sim: Callable[[int, int], float | None]
    if c.query_vector is not None and mode == "hybrid":
        sims = vectors[positions] @ c.query_vector

        def vector_sim(rank: int, p: int) -> float | None:
            return float(sims[rank])
    else:
        of_vector = _score_of(vec_pos, vec_scores)

        def vector_sim(rank: int, p: int) -> float | None:
            return of_vector(p)
    keyword = _score_of(kw_pos, kw_scores)
    lists = {"keyword": kw_pos, "semantic": vec_pos, "popular": c.popular,
             "ref": c.reference[0]}
    sets: dict[str, set[int]] = {}
    like = "similar to " + ", ".join(c.reference_titles) if c.reference_titles else ""
    genres = c.filters.genres

    def reasons(p: int) -> tuple[str, ...]:
        if not sets:
            sets.update((name, set(arr.tolist())) for name, arr in lists.items())
        out = [name for name in ("keyword", "semantic") if p in sets[name]]
        if p in sets["ref"] and like:
            out.append(like)
        if genres:
            out.extend(f"genre: {g}" for g in genres if arrays.genre_bits[p] >> GENRES.index(g) & 1)
        if p in sets["popular"] and not out:
            out.append("popular")
        if user_vector is not None and boost > 0:
            out.append("personalized")
        return tuple(out)

    return Ranked(positions, np.asarray(scores, np.float64), vector_sim, keyword, reasons)


__all__ = ["Candidates", "Ranked", "Retriever", "RrfWeights", "score_candidates", "title_key"]
