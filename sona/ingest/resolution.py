"""Entity resolution: link each canonical record to the catalog entity it describes (SPEC §4).

Rules run in order and the first hit wins:

1. ``eidr``: exact EIDR id -> confidence 1.0;
2. ``external_id``: exact IMDb or TMDb id -> 0.99;
3. ``fuzzy_title``: normalised Levenshtein similarity of the title keys >= 0.85 and
   release years at most 1 apart -> confidence mapped linearly [0.85, 1] -> [0.90, 0.98];
4. ``embedding``: cosine of the title embeddings >= 0.92, found through an ANN
   (faiss HNSW) index instead of a linear scan -> [0.92, 1] -> [0.85, 0.95];

otherwise the record founds a new entity (rule ``new``). Before rule 1 the resolver checks
the cache (10 000 entries, TTL 1 h) and the ``platform:<name>`` mapping of the record's own
platform id (rule ``platform_id``: a webhook update of a title already ingested).

**NEW** decisions, each measured by :mod:`sona.ingest.evaluation`:

- Titles are compared by :func:`~sona.ingest.titles.match_key` (accents folded, trailing
  articles restored, edition markers and alternative titles removed), not raw lower-case.
- An id hit whose title similarity to the entity is below ``id_title_guard`` (0.6) is a
  conflicting id (a copy-paste error in a feed): it is ignored, recorded in
  ``Resolution.conflicts`` and the later rules decide. When IMDb and TMDb point to different
  entities the one whose title agrees wins.
- An id already mapped to another entity is never re-pointed (first mapping wins).
- Rule 4 embeds the display title only and rejects a neighbour whose known release years
  are all more than ``year_tolerance`` away from the record's (sequels embed close:
  cos("Die Hard", "Die Hard 2") = 0.85 with MiniLM).
- ``title_scorer="osa"`` (optimal string alignment, a swap of neighbours = one edit) is
  available next to the SPEC's plain Levenshtein; the default stays Levenshtein.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from sona.errors import ConfigError
from sona.ingest.records import CanonicalRecord
from sona.ingest.titles import display_title, match_key

log = logging.getLogger(__name__)

RULES: tuple[str, ...] = ("platform_id", "eidr", "external_id", "fuzzy_title", "embedding", "new")
MATCH_RULES: tuple[str, ...] = ("eidr", "external_id", "fuzzy_title", "embedding")
_NAMESPACE = uuid.UUID("6b1f4c1e-3f0e-4f55-9d67-5a0e8f7c2b11")
_ID_TYPES = ("eidr_id", "imdb_id", "tmdb_id")
_SCORERS: dict[str, Callable[..., float]] = {
    "levenshtein": Levenshtein.normalized_similarity, "osa": OSA.normalized_similarity}


class Encoder(Protocol):
    """What rule 4 needs from a text encoder (``sona.embeddings.TextEncoder`` fits)."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` -> float32 ``(n, d)``."""
        ...


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """Thresholds and caches of :class:`EntityResolver` (SPEC §4 values by default)."""

    rules: tuple[str, ...] = MATCH_RULES  # enabled match rules, applied in this order
    fuzzy_threshold: float = 0.85  # rule 3: min normalised edit similarity
    title_scorer: Literal["levenshtein", "osa"] = "levenshtein"  # rule 3 edit distance
    year_tolerance: int = 1  # rule 3: max |year difference|
    embedding_threshold: float = 0.92  # rule 4: min cosine similarity
    id_title_guard: float = 0.6  # rules 1-2: an IMDb/TMDb hit below this title similarity conflicts
    cache_size: int = 10_000  # resolution cache entries (LRU)
    cache_ttl_s: float = 3600.0  # resolution cache time to live, seconds
    index_kind: Literal["flat", "hnsw"] = "hnsw"  # rule 4 ANN index over entity vectors
    hnsw_m: int = 32  # hnsw graph degree
    ef_search: int = 64  # hnsw query candidate list (recall knob)
    candidates: int = 5  # rule 4: neighbours fetched per query (removed entities skipped)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Outcome for one record: the entity, the rule that decided and its confidence."""

    entity_id: str
    rule: str  # one of RULES
    confidence: float
    similarity: float | None = None  # title similarity (rules 2-3) or cosine (rule 4)
    conflicts: tuple[str, ...] = ()  # ids ignored as conflicting, e.g. "imdb_id:tt0111161"

    @property
    def is_new(self) -> bool:
        """Whether the record founded a new entity."""
        return self.rule == "new"


@dataclass(slots=True)
class _Entity:
    keys: set[str] = field(default_factory=set)
    years: set[int] = field(default_factory=set)


class _TTLCache:
    """LRU cache with a time to live (the original's 10 000 entries / 1 h)."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._data: OrderedDict[str, tuple[float, Resolution]] = OrderedDict()

    def get(self, key: str) -> Resolution | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if self.clock() - hit[0] > self.ttl:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return hit[1]

    def put(self, key: str, value: Resolution) -> None:
        self._data[key] = (self.clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def drop_entity(self, entity_id: str) -> None:
        for key in [k for k, (_, r) in self._data.items() if r.entity_id == entity_id]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


def identity_text(title: str) -> str:
    """The text rule 4 embeds: the display title.

    Genres and overviews vary per platform and the year is checked separately (a missing
    year would otherwise cost ~0.3 cosine with MiniLM: "Big Night (1996)" vs "Big Night").
    """
    return display_title(title)


def _linear(x: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    span = max(hi - lo, 1e-12)
    return float(out_lo + (min(max(x, lo), hi) - lo) / span * (out_hi - out_lo))


class EntityResolver:
    """Stateful resolver over the entities seen so far (see module docstring).

    Args:
        config: thresholds and caches.
        encoder: text encoder for rule 4 (required when ``"embedding"`` is enabled).
        clock: seconds clock of the cache TTL (``time.monotonic``).
    """

    def __init__(self, config: ResolverConfig | None = None, *, encoder: Encoder | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or ResolverConfig()
        unknown = [r for r in self.config.rules if r not in MATCH_RULES]
        if unknown:
            raise ConfigError(f"unknown resolution rule(s) {unknown}; expected {MATCH_RULES}")
        if "embedding" in self.config.rules and encoder is None:
            raise ConfigError("resolution rule 'embedding' needs an encoder; pass encoder= "
                              "or drop the rule from ResolverConfig.rules")
        self.encoder = encoder
        if self.config.title_scorer not in _SCORERS:
            raise ConfigError(f"unknown title_scorer {self.config.title_scorer!r}; "
                              f"expected one of {sorted(_SCORERS)}")
        self._scorer = _SCORERS[self.config.title_scorer]
        self.entities: dict[str, _Entity] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self._by_year: dict[int, list[tuple[str, str]]] = {}
        self._cache = _TTLCache(self.config.cache_size, self.config.cache_ttl_s, clock)
        self._index: Any = None
        self._removed: set[str] = set()
        self._indexed: set[str] = set()
        self._pending: list[tuple[str, str, str, float]] = []

    # ---- public --------------------------------------------------------------------------
    def resolve(self, record: CanonicalRecord, *,
                vector: NDArray[np.float32] | None = None) -> Resolution:
        """Resolve one record and register it with its entity (see module docstring).

        Args:
            record: a normalised record.
            vector: its identity-text embedding, if already computed (else encoded here).
        """
        key = match_key(record.title)
        cached = self._cache.get(record.key)
        if cached is not None and cached.entity_id in self.entities:
            self._register(record, key, cached, None)  # an update may bring new ids/titles
            return cached
        res, conflicts = self._match(record, key)
        vec = None
        if res is None:
            vec = self._vector(record, vector)
            res = self._by_embedding(vec, record.release_year) if vec is not None else None
        if res is None:
            res = Resolution(str(uuid.uuid5(_NAMESPACE, record.key)), "new", 1.0)
        if conflicts:
            res = replace(res, conflicts=conflicts)
        self._register(record, key, res, vec)
        self._cache.put(record.key, res)
        return res

    def resolve_many(self, records: Sequence[CanonicalRecord], *,
                     vectors: NDArray[np.float32] | None = None,
                     progress: Callable[[int], None] | None = None) -> list[Resolution]:
        """Resolve records in order; ``vectors`` (one row per record) saves re-encoding."""
        if vectors is not None and len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors for {len(records)} records")
        out = []
        for i, rec in enumerate(records):
            out.append(self.resolve(rec, vector=None if vectors is None else vectors[i]))
            if progress is not None:
                progress(1)
        return out

    def add_entity(self, entity_id: str, titles: Iterable[str], years: Iterable[int | None],
                   ids: Iterable[tuple[str, str]] = (), *,
                   vector: NDArray[np.float32] | None = None) -> None:
        """Register an existing catalog entity (bootstrapping from the store)."""
        ent = self.entities.setdefault(entity_id, _Entity())
        self._removed.discard(entity_id)
        for year in years:
            if year is not None:
                ent.years.add(int(year))
        for title in titles:
            self._add_key(entity_id, ent, match_key(title))
        for id_type, value in ids:
            self._ids.setdefault((id_type, value), entity_id)
        if vector is not None and "embedding" in self.config.rules:
            self._index_add(entity_id, np.asarray(vector, np.float32))

    def remove_entity(self, entity_id: str) -> None:
        """Forget an entity (deleted from the catalog): no rule will return it again."""
        self.entities.pop(entity_id, None)
        self._removed.add(entity_id)
        for k in [k for k, e in self._ids.items() if e == entity_id]:
            del self._ids[k]
        for year, rows in self._by_year.items():
            self._by_year[year] = [r for r in rows if r[1] != entity_id]
        self._cache.drop_entity(entity_id)

    def drain_mappings(self) -> list[tuple[str, str, str, float]]:
        """New ``(external_id, id_type, entity_id, confidence)`` rows since the last call."""
        out, self._pending = self._pending, []
        return out

    def encode_records(self, records: Sequence[CanonicalRecord]) -> NDArray[np.float32] | None:
        """Identity-text vectors of ``records`` in one batch (``None`` without rule 4)."""
        return self.encode_titles([r.title for r in records])

    def encode_titles(self, titles: Sequence[str]) -> NDArray[np.float32] | None:
        """Rule-4 vectors of ``titles`` in one batch (``None`` without rule 4)."""
        if self.encoder is None or "embedding" not in self.config.rules or not titles:
            return None
        texts = [identity_text(t) for t in titles]
        return np.asarray(self.encoder.encode(texts), np.float32)

    # ---- rules ---------------------------------------------------------------------------
    def _match(self, record: CanonicalRecord,
               key: str) -> tuple[Resolution | None, tuple[str, ...]]:
        known = self._ids.get((f"platform:{record.platform_id}", record.platform_content_id))
        if known is not None:
            return Resolution(known, "platform_id", 1.0), ()
        conflicts: list[str] = []
        rules = self.config.rules
        if "eidr" in rules and (eidr := record.external_ids.get("eidr_id")):
            hit = self._ids.get(("eidr_id", eidr))
            if hit is not None:
                return Resolution(hit, "eidr", 1.0), ()
        if "external_id" in rules:
            hits = []
            for id_type in ("imdb_id", "tmdb_id"):
                value = record.external_ids.get(id_type)
                entity = self._ids.get((id_type, value)) if value else None
                if entity is None:
                    continue
                sim = self._title_similarity(key, entity)
                if sim >= self.config.id_title_guard:
                    hits.append((sim, entity))
                else:
                    conflicts.append(f"{id_type}:{value}")
            if hits:
                sim, entity = max(hits)
                return Resolution(entity, "external_id", 0.99, sim), tuple(conflicts)
        if "fuzzy_title" in rules and record.release_year is not None and key:
            fuzzy = self._by_title(key, record.release_year)
            if fuzzy is not None:
                entity, sim = fuzzy
                conf = _linear(sim, self.config.fuzzy_threshold, 1.0, 0.90, 0.98)
                return Resolution(entity, "fuzzy_title", conf, sim), tuple(conflicts)
        return None, tuple(conflicts)

    def _by_title(self, key: str, year: int) -> tuple[str, float] | None:
        tol = self.config.year_tolerance
        rows = [r for y in range(year - tol, year + tol + 1) for r in self._by_year.get(y, ())]
        if not rows:
            return None
        best = process.extractOne(key, [r[0] for r in rows], scorer=self._scorer,
                                  score_cutoff=self.config.fuzzy_threshold)
        if best is None:
            return None
        return rows[best[2]][1], float(best[1])

    def _by_embedding(self, vec: NDArray[np.float32], year: int | None) -> Resolution | None:
        if self._index is None or len(self._index) == 0:
            return None
        k = min(self.config.candidates, len(self._index))
        recs = self._index.search(vec[None, :], k)
        for entity, score in zip(recs.ids[0], recs.scores[0], strict=True):
            if np.isnan(score) or str(entity) in self._removed:
                continue
            if score < self.config.embedding_threshold:
                return None
            if self._years_compatible(str(entity), year):
                conf = _linear(float(score), self.config.embedding_threshold, 1.0, 0.85, 0.95)
                return Resolution(str(entity), "embedding", conf, float(score))
        return None

    def _years_compatible(self, entity_id: str, year: int | None) -> bool:
        ent = self.entities.get(entity_id)
        if year is None or ent is None or not ent.years:
            return True
        return any(abs(year - y) <= self.config.year_tolerance for y in ent.years)

    # ---- state ---------------------------------------------------------------------------
    def _vector(self, record: CanonicalRecord,
                vector: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if "embedding" not in self.config.rules:
            return None
        if vector is not None:
            return np.asarray(vector, np.float32)
        assert self.encoder is not None  # checked in __init__
        text = identity_text(record.title)
        return np.asarray(self.encoder.encode([text]), np.float32)[0]

    def _title_similarity(self, key: str, entity_id: str) -> float:
        ent = self.entities.get(entity_id)
        if ent is None or not ent.keys:
            return 0.0
        return max(self._scorer(key, k) for k in ent.keys)

    def _add_key(self, entity_id: str, ent: _Entity, key: str) -> None:
        if not key or key in ent.keys:
            return
        ent.keys.add(key)
        for year in ent.years:
            self._by_year.setdefault(year, []).append((key, entity_id))

    def _register(self, record: CanonicalRecord, key: str, res: Resolution,
                  vec: NDArray[np.float32] | None) -> None:
        entity_id = res.entity_id
        self._removed.discard(entity_id)  # a deleted title can come back under its old id
        ent = self.entities.setdefault(entity_id, _Entity())
        year = record.release_year
        if year is not None and year not in ent.years:
            ent.years.add(year)
            for k in ent.keys:
                self._by_year.setdefault(year, []).append((k, entity_id))
        self._add_key(entity_id, ent, key)
        rows = [(f"platform:{record.platform_id}", record.platform_content_id)]
        rows += [(t, record.external_ids[t]) for t in _ID_TYPES if record.external_ids.get(t)]
        conflicting = set(res.conflicts)
        for id_type, value in rows:
            if f"{id_type}:{value}" in conflicting:
                continue
            owner = self._ids.setdefault((id_type, value), entity_id)
            if owner == entity_id:
                self._pending.append((value, id_type, entity_id, res.confidence))
        if res.is_new and vec is not None:
            self._index_add(entity_id, vec)

    def _index_add(self, entity_id: str, vec: NDArray[np.float32]) -> None:
        if self._index is None:
            from sona.search.faiss_index import FaissIndex, FaissIndexConfig

            cfg = self.config
            self._index = FaissIndex(FaissIndexConfig(
                kind=cfg.index_kind, metric="cosine", hnsw_m=cfg.hnsw_m,
                ef_search=cfg.ef_search, kind_of_ids="entity"))
        if entity_id in self._indexed:
            return
        self._index.add(np.array([entity_id]), vec[None, :])
        self._indexed.add(entity_id)


__all__ = [
    "MATCH_RULES", "RULES", "Encoder", "EntityResolver", "Resolution", "ResolverConfig",
    "identity_text",
]
