"""Keyword search: a tantivy BM25 index over titles, alternate titles, overview, people, genres.

Field boosts (title > alternate titles > people > genres = overview) and an exact-title
phrase bonus are config fields, tuned by ``sona search eval``. Typo tolerance is query-side
spelling correction: a query word that occurs nowhere in the indexed text is replaced by the
nearest indexed words (Levenshtein distance <= 1, or 2 for words of 8+ letters, found with
rapidfuzz), down-weighted by ``fuzzy_penalty``. The corrected words are then scored by BM25
like any other term, unlike tantivy's fuzzy term queries, which score every match the same.

Filters (:class:`~sona.search.filters.SearchFilters`) run inside tantivy as non-scoring
clauses, so the top-k are the best matches *among* the allowed documents. The index lives in
memory; :class:`~sona.search.engine.SearchEngine` rebuilds it from its saved documents.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona.genres import GENRES
from sona.search.filters import MATURITY_LEVELS, PLATFORMS, SearchFilters

log = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset({"the", "a", "an", "of", "and", "or", "in", "on", "at", "to", "for",
                       "with", "from", "by", "is", "it", "this", "that", "as", "be"})
"""Dropped from keyword queries that have other words (kept in the title phrase clause)."""
_FIELDS = ("title", "alternate_titles", "people", "genres", "overview")
# words a genre is indexed under, so "sci-fi", "science fiction" and "scifi" all hit sci_fi
_GENRE_WORDS: dict[str, str] = {
    "sci_fi": "sci fi scifi science fiction", "game_show": "game show gameshow",
    "reality_tv": "reality tv", "talk_show": "talk show", "family": "family kids children",
    "animation": "animation animated", "musical": "musical music", "sport": "sport sports",
    "documentary": "documentary documentaries", "biography": "biography biopic",
    "history": "history historical", "romance": "romance romantic", "comedy": "comedy comedies",
}


def fold(text: str) -> str:
    """Lower-case and strip accents (``"Cité"`` -> ``"cite"``), as the index analyzers do."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(text: str) -> list[str]:
    """Query/index words: folded alphanumeric runs."""
    return _WORD.findall(fold(text))


@dataclass(frozen=True, slots=True)
class TextIndexConfig:
    """BM25 field boosts and typo tolerance (tuned offline by ``sona search eval``)."""

    title_boost: float = 3.0  # weight of title matches
    alternate_boost: float = 2.0  # weight of alternate/original title matches
    people_boost: float = 1.5  # weight of director/writer/cast matches
    genres_boost: float = 1.0  # weight of genre-word matches
    overview_boost: float = 1.0  # weight of overview matches
    phrase_boost: float = 2.0  # extra weight of the whole query as a title phrase (0 = off)
    fuzzy: bool = True  # correct words absent from the index (typo tolerance)
    fuzzy_min_length: int = 4  # shorter unknown words are left alone
    long_word: int = 8  # words this long may be corrected with 2 edits, shorter with 1
    fuzzy_penalty: float = 0.6  # weight of a corrected word relative to an exact one
    max_corrections: int = 3  # nearest indexed words tried per unknown word
    stem: bool = True  # English stemming of title/overview ("stories" ~ "story")
    heap_mb: int = 64  # tantivy writer memory budget (MB)


class TextIndex:
    """In-memory tantivy BM25 index over search documents (row position = doc key)."""

    def __init__(self, config: TextIndexConfig | None = None) -> None:
        self.config = config or TextIndexConfig()
        self._index: Any = None
        self._schema: Any = None
        self._vocab: dict[int, list[str]] = {}
        self._vocab_set: set[str] = set()
        self._freq: Counter[str] = Counter()
        self._writer: Any = None  # kept open by update() after the first change
        self.n_docs_ = 0

    # --- build ---------------------------------------------------------------------
    def _analyzers(self, index: object) -> None:
        from tantivy import Filter, TextAnalyzerBuilder, Tokenizer

        def build(stem: bool) -> object:
            builder = (TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.remove_long(40))
                       .filter(Filter.lowercase()).filter(Filter.ascii_fold()))
            if stem:
                builder = builder.filter(Filter.stemmer("english"))
            return builder.build()

        index.register_tokenizer("sona_text", build(self.config.stem))  # type: ignore[attr-defined]
        index.register_tokenizer("sona_plain", build(False))  # type: ignore[attr-defined]

    def _schema_builder(self) -> Any:
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_unsigned_field("pos", stored=True, indexed=True, fast=True)
        for name in ("title", "alternate_titles", "overview"):
            sb.add_text_field(name, stored=False, tokenizer_name="sona_text")
        for name in ("people", "genres"):
            sb.add_text_field(name, stored=False, tokenizer_name="sona_plain")
        sb.add_text_field("genre_tag", stored=False, tokenizer_name="raw", index_option="basic")
        sb.add_text_field("platform_tag", stored=False, tokenizer_name="raw",
                          index_option="basic")
        sb.add_integer_field("year", indexed=True, fast=True)
        sb.add_integer_field("maturity", indexed=True, fast=True)
        sb.add_float_field("rating", indexed=True, fast=True)
        sb.add_float_field("runtime", indexed=True, fast=True)
        return sb.build()

    def _document(self, pos: int, row: Any) -> Any:
        """The tantivy document of one document-frame row (``itertuples``) at ``pos``."""
        import tantivy

        doc = tantivy.Document()
        doc.add_unsigned("pos", pos)
        doc.add_text("title", row.title)
        for alt in row.alternate_titles:
            doc.add_text("alternate_titles", alt)
        if row.overview:
            doc.add_text("overview", row.overview)
        for person in row.people:
            doc.add_text("people", person)
        for genre in row.genres:
            doc.add_text("genres", _GENRE_WORDS.get(genre, genre.replace("_", " ")))
            doc.add_text("genre_tag", genre)
        for platform in row.platforms:
            doc.add_text("platform_tag", platform)
        if not np.isnan(row.year):
            doc.add_integer("year", int(row.year))
        if row.maturity in MATURITY_LEVELS:
            doc.add_integer("maturity", MATURITY_LEVELS[row.maturity])
        if not np.isnan(row.rating):
            doc.add_float("rating", float(row.rating))
        if not np.isnan(row.runtime):
            doc.add_float("runtime", float(row.runtime))
        return doc

    def build(self, documents: pd.DataFrame) -> TextIndex:
        """Index a checked document frame (:func:`~sona.search.documents.check_documents`).

        Returns self; any earlier index is discarded.
        """
        import tantivy

        schema = self._schema_builder()
        index = tantivy.Index(schema)
        self._analyzers(index)
        writer = index.writer(heap_size=self.config.heap_mb * 1_000_000, num_threads=1)
        freq: Counter[str] = Counter()
        for pos, row in enumerate(documents.itertuples(index=False)):
            writer.add_document(self._document(pos, row))
            freq.update(_row_words(row))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        for genre in GENRES:
            freq.update(words(_GENRE_WORDS.get(genre, genre.replace("_", " "))))
        by_length: dict[int, list[str]] = defaultdict(list)
        for word in freq:
            by_length[len(word)].append(word)
        self._index, self._schema = index, schema
        self._searcher = index.searcher()
        self._vocab, self._vocab_set, self._freq = dict(by_length), set(freq), freq
        self.n_docs_ = len(documents)
        self._writer = None
        return self

    def update(self, removed: Iterable[tuple[int, Any]], added: Iterable[tuple[int, Any]]
               ) -> None:
        """Delete and add documents in place: ``(position, row)`` pairs (``itertuples`` rows).

        Deletes by the ``pos`` term and adds the new documents in one commit, then swaps in
        a searcher of the new commit (a searcher is a point-in-time view, so a query holding
        the old one finishes on it). The spelling vocabulary follows word by word. Cost:
        proportional to the changed documents (tantivy writes them as a new small segment
        and merges segments in the background). BM25 statistics (document frequencies,
        average field length) count a deleted document until the merge that purges it, as
        in Lucene, so scores can differ slightly from a freshly built index.
        """
        from tantivy import Query

        if self._index is None:
            from sona.errors import NotFittedError

            raise NotFittedError("TextIndex.update called before build(documents)")
        if self._writer is None:  # build's writer is gone after wait_merging_threads
            self._writer = self._index.writer(heap_size=self.config.heap_mb * 1_000_000,
                                              num_threads=1)
        writer = self._writer
        delta = 0
        for pos, row in removed:
            writer.delete_documents_by_query(Query.term_query(self._schema, "pos", pos))
            self._forget(_row_words(row))
            delta -= 1
        for pos, row in added:
            writer.add_document(self._document(pos, row))
            self._learn(_row_words(row))
            delta += 1
        writer.commit()
        self._index.reload()
        self._searcher = self._index.searcher()
        self.n_docs_ += delta

    def _learn(self, found: list[str]) -> None:
        for word in found:
            if not self._freq[word]:
                self._vocab.setdefault(len(word), []).append(word)
                self._vocab_set.add(word)
            self._freq[word] += 1

    def _forget(self, found: list[str]) -> None:
        for word in found:
            self._freq[word] -= 1
            if self._freq[word] <= 0:
                del self._freq[word]
                self._vocab_set.discard(word)
                self._vocab[len(word)].remove(word)

    def __len__(self) -> int:
        return self.n_docs_

    # --- query ---------------------------------------------------------------------
    def corrections(self, word: str) -> list[str]:
        """Indexed words nearest to ``word`` (empty if it is indexed, short, or too far)."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        cfg = self.config
        if word in self._vocab_set or len(word) < cfg.fuzzy_min_length or word.isdigit():
            return []
        edits = 2 if len(word) >= cfg.long_word else 1
        pool = [w for n in range(len(word) - edits, len(word) + edits + 1)
                for w in self._vocab.get(n, ())]
        found = process.extract(word, pool, scorer=Levenshtein.distance, score_cutoff=edits,
                                limit=4 * cfg.max_corrections)
        found.sort(key=lambda m: (m[1], -self._freq[m[0]]))
        return [m[0] for m in found[: cfg.max_corrections]]

    def rewrite(self, text: str) -> tuple[str, list[str]]:
        """The tantivy query string for ``text`` and the words it searches (corrected).

        Only alphanumeric words reach the parser, so user input can never be query syntax.
        """
        terms: list[str] = []
        phrase: list[str] = []
        tokens = words(text)
        content = [w for w in tokens if w not in STOPWORDS]
        for word in tokens:
            if content and word in STOPWORDS:  # "the" alone would match half the catalog
                phrase.append(word)
                continue
            fixes = self.corrections(word) if self.config.fuzzy else []
            if fixes:
                group = " OR ".join(fixes)
                terms.append(f"({group})^{self.config.fuzzy_penalty:g}")
                phrase.append(fixes[0])
            else:
                terms.append(word)
                phrase.append(word)
        if len(phrase) > 1 and self.config.phrase_boost > 0:
            terms.append(f'title:"{" ".join(phrase)}"^{self.config.phrase_boost:g}')
        searched = [w for w in phrase if w not in STOPWORDS] if content else phrase
        return " ".join(terms), searched

    def _filter_query(self, filters: SearchFilters) -> Any:
        from tantivy import FieldType, Occur, Query

        schema = self._schema
        clauses = []
        if filters.genres:
            terms = [(Occur.Must if filters.genre_mode == "all" else Occur.Should,
                      Query.term_query(schema, "genre_tag", g)) for g in filters.genres]
            clauses.append(Query.boolean_query(terms))
        if filters.platforms:
            clauses.append(Query.boolean_query(
                [(Occur.Should, Query.term_query(schema, "platform_tag", p))
                 for p in filters.platforms if p in PLATFORMS]))
        for field, kind, lo, hi in (
            ("year", FieldType.Integer, filters.year_min, filters.year_max),
            ("rating", FieldType.Float, filters.rating_min, filters.rating_max),
            ("runtime", FieldType.Float, filters.runtime_min, filters.runtime_max),
        ):
            if lo is not None or hi is not None:
                cast = int if kind == FieldType.Integer else float
                clauses.append(Query.range_query(
                    schema, field, kind, None if lo is None else cast(lo),
                    None if hi is None else cast(hi)))
        if filters.max_maturity is not None:
            clauses.append(Query.range_query(schema, "maturity", FieldType.Integer, None,
                                             MATURITY_LEVELS.get(filters.max_maturity, -1)))
        if not clauses:
            return None
        return Query.boolean_query([(Occur.Must, c) for c in clauses])

    def search(self, text: str, k: int, *, filters: SearchFilters | None = None,
               excluded: NDArray[np.int64] | None = None
               ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Top-``k`` document positions and BM25 scores for ``text`` (descending).

        Returns empty arrays when ``text`` has no searchable word. ``excluded`` positions are
        dropped after retrieval (over-fetching by their count).
        """
        if self._index is None:
            from sona.errors import NotFittedError

            raise NotFittedError("TextIndex.search called before build(documents)")
        from tantivy import Occur, Query

        query_string, searched = self.rewrite(text)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float64))
        if not searched or k <= 0:
            return empty
        cfg = self.config
        boosts = {"title": cfg.title_boost, "alternate_titles": cfg.alternate_boost,
                  "people": cfg.people_boost, "genres": cfg.genres_boost,
                  "overview": cfg.overview_boost}
        query = self._index.parse_query(query_string, list(_FIELDS), field_boosts=boosts)
        flt = self._filter_query(filters) if filters is not None else None
        if flt is not None:
            query = Query.boolean_query([(Occur.Must, query),
                                         (Occur.Must, Query.const_score_query(flt, 0.0))])
        n_excl = 0 if excluded is None else len(excluded)
        hits = self._searcher.search(query, k + n_excl, count=False).hits
        if not hits:
            return empty
        scores = np.array([h[0] for h in hits], dtype=np.float64)
        pos = np.array(self._searcher.fast_field_values("pos", [h[1] for h in hits]),
                       dtype=np.int64)
        if excluded is not None and n_excl:
            keep = ~np.isin(pos, excluded)
            pos, scores = pos[keep], scores[keep]
        return pos[:k], scores[:k]

    def count(self, filters: SearchFilters) -> int:
        """Number of documents passing ``filters`` (used to check filter parity)."""
        from tantivy import Query

        flt = self._filter_query(filters)
        query = flt if flt is not None else Query.all_query()
        result: Any = self._searcher.search(query, 1, count=True)
        return int(result.count)


def _row_words(row: Any) -> list[str]:
    """The indexed words of a row that feed the spelling vocabulary (with repeats)."""
    return words(" ".join([row.title, *row.alternate_titles, *row.people, row.overview]))


__all__ = ["STOPWORDS", "TextIndex", "TextIndexConfig", "fold", "words"]
