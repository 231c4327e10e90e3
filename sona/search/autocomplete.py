"""Autocomplete: prefix matching with typo tolerance, ranked by popularity (SPEC §3.3).

Suggestions (titles, people, genres, platforms and logged queries) are indexed under their
folded text *and* under every word start ("wars" finds "Star Wars"), in one sorted key array:
a flattened prefix trie where all completions of a prefix form one contiguous range found by
two binary searches, so a lookup costs O(log n) plus the top-``limit`` of that range.

Typo tolerance: when exact prefixes give fewer than ``limit`` suggestions, each complete
query word is corrected to indexed words within 1 edit (2 for 8+ letters) and the last,
partial word to indexed word *prefixes* within 1 edit (same first letter, the usual
autocomplete assumption), using rapidfuzz; corrected prefixes score ``typo_weight`` per fix.
Score = popularity x match weight (1 whole text, ``word_weight`` a later word, typos less).
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from sona.search.text_index import words

log = logging.getLogger(__name__)

SuggestionType = Literal["title", "person", "genre", "platform", "keyword"]
_MAX_PREFIX = 12  # partial-word typo matching looks at word prefixes up to this length


@dataclass(frozen=True, slots=True)
class AutocompleteConfig:
    """Ranking and typo settings of :class:`Autocomplete`."""

    limit: int = 10  # default number of suggestions
    word_weight: float = 0.8  # weight of a match on a later word ("wars" -> "Star Wars")
    typo_weight: float = 0.5  # weight multiplier per corrected word
    min_typo_length: int = 3  # shorter query words are never corrected
    long_word: int = 8  # complete words this long may be corrected with 2 edits
    max_variants: int = 4  # corrected queries tried at most
    cache_size: int = 4096  # completions memoised (LRU), keyed by (prefix, limit)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One completion: display ``text``, its ``type`` and ``popularity`` (0-1)."""

    text: str
    type: SuggestionType
    popularity: float
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0  # popularity x match weight (ranking key)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"text": self.text, "type": self.type, "popularity": round(self.popularity, 6),
                "metadata": self.metadata}


def _key(text: str) -> str:
    return " ".join(words(text))


def group_key(entry: Suggestion) -> tuple[str, str]:
    """``(folded text, type)``: suggestions sharing it are one entry (the most popular)."""
    return _key(entry.text), entry.type


def title_suggestion(row: Any) -> Suggestion:
    """The title suggestion of one document-frame row (``itertuples``)."""
    meta = {"item_id": row.item_id.item() if hasattr(row.item_id, "item") else row.item_id}
    if not np.isnan(row.year):
        meta["year"] = int(row.year)
    return Suggestion(row.title, "title", float(row.popularity), meta)


class Autocomplete:
    """Prefix index over suggestions; build with :meth:`build`, query with :meth:`complete`."""

    def __init__(self, config: AutocompleteConfig | None = None) -> None:
        self.config = config or AutocompleteConfig()
        self._entries: list[Suggestion] = []
        self._keys: list[str] = []
        self._entry_of: np.ndarray = np.zeros(0, np.int64)
        self._key_score: np.ndarray = np.zeros(0, np.float64)
        self._words: dict[tuple[str, int], list[str]] = {}
        self._prefixes: dict[tuple[str, int], list[str]] = {}
        self._cache: OrderedDict[tuple[str, int], list[Suggestion]] = OrderedDict()
        self._entry_of_group: dict[tuple[str, str], int] = {}  # group_key -> entry index
        self._free: list[int] = []  # entry indexes left by removed groups (reused)
        self._word_count: Counter[str] = Counter()  # indexed entries containing each word
        self._prefix_count: Counter[str] = Counter()  # indexed words starting with a prefix

    # --- build -----------------------------------------------------------------------
    @staticmethod
    def entries_from_documents(documents: pd.DataFrame) -> list[Suggestion]:
        """Title, person, genre and platform suggestions of a document frame.

        People, genres and platforms get the popularity of their most popular item, times
        the share of items they cover for genres/platforms (so broad facets rank high).
        """
        out: list[Suggestion] = []
        people: dict[str, float] = {}
        genres: dict[str, list[float]] = defaultdict(list)
        platforms: dict[str, list[float]] = defaultdict(list)
        for row in documents.itertuples(index=False):
            out.append(title_suggestion(row))
            for name in row.people:
                people[name] = max(people.get(name, 0.0), float(row.popularity))
            for g in row.genres:
                genres[g].append(float(row.popularity))
            for p in row.platforms:
                platforms[p].append(float(row.popularity))
        out.extend(Suggestion(n, "person", p) for n, p in people.items())
        n = max(len(documents), 1)
        facet_tables: tuple[tuple[SuggestionType, dict[str, list[float]]], ...] = (
            ("genre", genres), ("platform", platforms))
        for kind, table in facet_tables:
            for value, pops in table.items():
                pop = min(1.0, 0.5 + 0.5 * len(pops) / n) * max(pops)
                out.append(Suggestion(value.replace("_", " "), kind, pop, {"value": value}))
        return out

    def build(self, entries: Iterable[Suggestion]) -> Autocomplete:
        """Index ``entries``; of duplicate (text, type) pairs the more popular is kept."""
        best: dict[tuple[str, str], Suggestion] = {}
        for e in entries:
            k = (_key(e.text), e.type)
            if k[0] and (k not in best or e.popularity > best[k].popularity):
                best[k] = e
        self._entries = list(best.values())
        rows: list[tuple[str, int, float]] = []
        vocab: set[str] = set()
        for i, e in enumerate(self._entries):
            toks = words(e.text)
            vocab.update(toks)
            for j in range(len(toks)):
                weight = 1.0 if j == 0 else self.config.word_weight
                rows.append((" ".join(toks[j:]), i, weight * e.popularity))
        rows.sort(key=lambda r: r[0])
        self._keys = [r[0] for r in rows]
        self._entry_of = np.array([r[1] for r in rows], dtype=np.int64)
        self._key_score = np.array([r[2] for r in rows], dtype=np.float64)
        by_bucket: dict[tuple[str, int], list[str]] = defaultdict(list)
        for w in vocab:
            by_bucket[(w[0], len(w))].append(w)
        self._words = dict(by_bucket)
        prefixes: dict[tuple[str, int], set[str]] = defaultdict(set)
        for w in vocab:
            for n in range(1, min(len(w), _MAX_PREFIX) + 1):
                prefixes[(w[0], n)].add(w[:n])
        self._prefixes = {k: sorted(v) for k, v in prefixes.items()}
        self._entry_of_group = {k: i for i, k in enumerate(best)}
        self._free = []
        self._word_count = Counter(w for e in self._entries for w in set(words(e.text)))
        self._prefix_count = Counter(w[:n] for w in vocab
                                     for n in range(1, min(len(w), _MAX_PREFIX) + 1))
        self._cache.clear()
        return self

    @property
    def entries(self) -> list[Suggestion]:
        """The indexed suggestions (one per :func:`group_key`)."""
        free = set(self._free)
        return [e for i, e in enumerate(self._entries) if i not in free]

    def replace(self, changes: dict[tuple[str, str], Suggestion | None]) -> None:
        """Set the suggestion of each :func:`group_key` in place (``None`` removes it).

        What :meth:`build` would index for the changed entry set, at a cost proportional to
        the changed entries' keys (binary-search inserts into the sorted key array) rather
        than to the whole index. Not safe against concurrent :meth:`complete` calls: the
        owner serialises them (:class:`~sona.search.live.LiveCatalog` holds its write lock).
        """
        drop: list[int] = []
        add: list[tuple[str, int, float]] = []
        for group, new in changes.items():
            if new is not None and (not group[0] or group_key(new) != group):
                raise ValueError(f"suggestion {new.text!r} does not belong to group {group}")
            e = self._entry_of_group.get(group)
            if e is not None and new is not None:  # same words: only the scores change
                for row, weight in self._rows_of(e):
                    self._key_score[row] = weight * new.popularity
                self._entries[e] = new
            elif e is not None:
                drop.extend(row for row, _ in self._rows_of(e))
                self._free.append(e)
                del self._entry_of_group[group]
                self._count_words(self._entries[e], -1)
            elif new is not None:
                e = self._free.pop() if self._free else len(self._entries)
                if e == len(self._entries):
                    self._entries.append(new)
                else:
                    self._entries[e] = new
                self._entry_of_group[group] = e
                self._count_words(new, +1)
                toks = words(new.text)
                add.extend((" ".join(toks[j:]), e,
                            (1.0 if j == 0 else self.config.word_weight) * new.popularity)
                           for j in range(len(toks)))
        if drop:
            drop.sort()
            for row in reversed(drop):
                del self._keys[row]
            self._entry_of = np.delete(self._entry_of, drop)
            self._key_score = np.delete(self._key_score, drop)
        if add:
            add.sort(key=lambda r: r[0])
            at = [bisect.bisect_right(self._keys, key) for key, _, _ in add]
            for i in reversed(range(len(add))):
                self._keys.insert(at[i], add[i][0])
            self._entry_of = np.insert(self._entry_of, at, [r[1] for r in add])
            self._key_score = np.insert(self._key_score, at, [r[2] for r in add])
        self._cache.clear()

    def _rows_of(self, e: int) -> list[tuple[int, float]]:
        """``(row, match weight)`` of every key row of entry ``e``."""
        toks = words(self._entries[e].text)
        out: list[tuple[int, float]] = []
        for j in range(len(toks)):
            key = " ".join(toks[j:])
            lo = bisect.bisect_left(self._keys, key)
            hi = bisect.bisect_right(self._keys, key, lo)
            hits = np.flatnonzero(self._entry_of[lo:hi] == e)
            out.extend((lo + int(r), 1.0 if j == 0 else self.config.word_weight) for r in hits)
        return out

    def _count_words(self, entry: Suggestion, sign: int) -> None:
        for w in set(words(entry.text)):
            self._word_count[w] += sign
            if sign > 0 and self._word_count[w] == 1:
                self._words.setdefault((w[0], len(w)), []).append(w)
                for n in range(1, min(len(w), _MAX_PREFIX) + 1):
                    self._prefix_count[w[:n]] += 1
                    if self._prefix_count[w[:n]] == 1:
                        bisect.insort(self._prefixes.setdefault((w[0], n), []), w[:n])
            elif sign < 0 and self._word_count[w] == 0:
                del self._word_count[w]
                self._words[(w[0], len(w))].remove(w)
                for n in range(1, min(len(w), _MAX_PREFIX) + 1):
                    self._prefix_count[w[:n]] -= 1
                    if self._prefix_count[w[:n]] == 0:
                        del self._prefix_count[w[:n]]
                        self._prefixes[(w[0], n)].remove(w[:n])

    def add_queries(self, counts: dict[str, int]) -> Autocomplete:
        """Add logged queries (query -> times searched) as ``keyword`` suggestions; rebuilds."""
        if not counts:
            return self
        top = max(counts.values())
        extra = [Suggestion(q, "keyword", c / top) for q, c in counts.items() if c > 0]
        return self.build([*self.entries, *extra])

    def __len__(self) -> int:
        return len(self._entries) - len(self._free)

    # --- lookup ----------------------------------------------------------------------
    def _range(self, prefix: str) -> tuple[int, int]:
        lo = bisect.bisect_left(self._keys, prefix)
        hi = bisect.bisect_left(self._keys, prefix + "\uffff", lo)
        return lo, hi

    def _lookup(self, prefix: str, limit: int, weight: float,
                found: dict[int, float]) -> None:
        lo, hi = self._range(prefix)
        if lo == hi:
            return
        scores = self._key_score[lo:hi]
        take = min(hi - lo, 4 * limit)
        top = (np.argpartition(-scores, take - 1)[:take] if take < hi - lo
               else np.arange(hi - lo))
        for j in top:
            e = int(self._entry_of[lo + j])
            s = float(scores[j]) * weight
            if s > found.get(e, -1.0):
                found[e] = s

    def _word_fixes(self, word: str, partial: bool) -> list[str]:
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        cfg = self.config
        if len(word) < cfg.min_typo_length:
            return []
        if not partial:
            edits = 2 if len(word) >= cfg.long_word else 1
            pool = [w for n in range(len(word) - edits, len(word) + edits + 1)
                    for w in self._words.get((word[0], n), ())]
        else:
            edits = 1
            pool = [p for n in (len(word) - 1, len(word), len(word) + 1)
                    for p in self._prefix_pool(word[0], n)]
        hits = process.extract(word, pool, scorer=Levenshtein.distance, score_cutoff=edits,
                               limit=3)
        return [h[0] for h in sorted(hits, key=lambda h: h[1]) if h[0] != word]

    def _prefix_pool(self, first: str, length: int) -> list[str]:
        return self._prefixes.get((first, length), [])

    def complete(self, query: str, limit: int | None = None) -> tuple[list[Suggestion], bool]:
        """Suggestions for the typed ``query`` (best first) and whether they came from cache.

        Raises:
            ValueError: ``limit`` below 1.
        """
        limit = self.config.limit if limit is None else int(limit)
        if limit < 1:
            raise ValueError(f"autocomplete limit must be >= 1, got {limit}")
        prefix = _key(query)
        if not prefix:
            return [], False
        if query[-1:].isspace():
            prefix += " "
        cache_key = (prefix, limit)
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key], True
        found: dict[int, float] = {}
        self._lookup(prefix, limit, 1.0, found)
        if len(found) < limit:
            self._typo_lookup(prefix, limit, found)
        ranked = sorted(found.items(), key=lambda kv: (-kv[1], self._entries[kv[0]].text))
        out, seen = [], set()
        for e, score in ranked:
            entry = self._entries[e]
            if (entry.text.lower(), entry.type) in seen:
                continue
            seen.add((entry.text.lower(), entry.type))
            out.append(Suggestion(entry.text, entry.type, entry.popularity, entry.metadata,
                                  score))
            if len(out) == limit:
                break
        self._cache[cache_key] = out
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return out, False

    def _typo_lookup(self, prefix: str, limit: int, found: dict[int, float]) -> None:
        toks = prefix.split()
        partial_last = not prefix.endswith(" ")
        options: list[list[tuple[str, int]]] = []
        for i, tok in enumerate(toks):
            partial = partial_last and i == len(toks) - 1
            fixes = self._word_fixes(tok, partial)
            if partial:
                exact = self._range(tok)
                keep = [(tok, 0)] if exact[0] != exact[1] else []
            else:
                keep = [(tok, 0)] if (tok[0], len(tok)) in self._words and \
                    tok in self._words[(tok[0], len(tok))] else []
            options.append(keep + [(f, 1) for f in fixes[:2]] or [(tok, 0)])
        variants = sorted(itertools.product(*options), key=lambda v: sum(n for _, n in v))
        tried = 0
        for variant in variants:
            n_fix = sum(n for _, n in variant)
            if n_fix == 0:
                continue
            text = " ".join(w for w, _ in variant) + ("" if partial_last else " ")
            self._lookup(text, limit, self.config.typo_weight ** n_fix, found)
            tried += 1
            if tried >= self.config.max_variants:
                break


__all__ = ["Autocomplete", "AutocompleteConfig", "Suggestion", "SuggestionType", "group_key",
           "title_suggestion"]
