"""Entity resolution: link each canonical record to the catalog entity it describes (SPEC §4).

The SPEC's rules, in order of strength:

1. ``eidr``: exact EIDR id -> confidence 1.0;
2. ``external_id``: exact IMDb or TMDb id -> 0.99;
3. ``fuzzy_title``: normalised Levenshtein similarity of the title keys >= 0.85 and
   release years at most 1 apart -> confidence mapped linearly [0.85, 1] -> [0.90, 0.98];
4. ``embedding``: cosine of the title embeddings >= 0.92, found through an ANN
   (faiss HNSW) index instead of a linear scan -> [0.92, 1] -> [0.85, 0.95];

plus ``platform_id`` (the record's own platform id is already mapped: a re-ingest or webhook
update) and **NEW** ``subtitle`` (a dropped subtitle: "Terminator 2" is the head of
"Terminator 2: Judgment Day", same year) -> 0.92. A record no rule links founds an entity
(rule ``new``).

**NEW** decisions (issue 14), each measured by :mod:`sona.ingest.evaluation`:

- Evidence is collected between *all* records of a batch and all known entities, and
  entities are the connected components of the accepted evidence (:mod:`sona.ingest.linking`),
  strongest rule first. A known entity is every title, alias, head, year, runtime and id its
  records brought, never its first record only. Two known entities that later evidence links
  (a shared EIDR, an id, a strong title match) merge: ``BatchResolution.merged`` names the
  absorbed ones. The outcome does not depend on record order (edges are sorted by strength
  and name; new entity ids are derived from the smallest record key of the component).
- Titles are compared by :func:`~sona.ingest.titles.title_forms`: main key, alias keys
  (bracketed alternative / original-language titles) and subtitle head.
- An IMDb/TMDb id shared by records whose titles disagree (similarity < ``id_title_guard``
  0.6) is *weak* evidence: it joins two components only when years (+-1) and runtimes
  (+-``runtime_tolerance``) agree and one side is a single record or two records support it.
  A copy-pasted id in one feed row is thereby outvoted by its own component's titles. Which
  entity owns an id is decided by the majority of records carrying it, so a correct id is
  never discarded because one record's title carried a marker; the losers are reported in
  ``Resolution.conflicts``.
- A component never holds release years more than ``max_year_span`` (2) apart (two records
  each off by one in opposite directions are 2 apart; remakes are further) nor two EIDRs.
- Rule 3 needs equal digit tokens ("die hard" never fuzzily matches "die hard 2") and, for a
  record without a year, an exact key plus runtimes within ``runtime_tolerance``.
- Rule 4 is the fallback for records no other rule linked; it embeds the display title only
  and also needs compatible years and equal digits (cos("Die Hard", "Die Hard 2") = 0.85).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from rapidfuzz.distance import OSA, Levenshtein

from sona.errors import ConfigError
from sona.ingest.linking import RANK, Blocks, Link, LinkConfig, Node, candidate_links, cluster
from sona.ingest.linking import years_close as _years_close
from sona.ingest.records import CanonicalRecord
from sona.ingest.titles import display_title, numbers_of, title_forms

log = logging.getLogger(__name__)

RULES: tuple[str, ...] = ("platform_id", "eidr", "external_id", "fuzzy_title", "subtitle",
                          "embedding", "new")
MATCH_RULES: tuple[str, ...] = ("eidr", "external_id", "fuzzy_title", "subtitle", "embedding")
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

    rules: tuple[str, ...] = MATCH_RULES  # enabled match rules
    fuzzy_threshold: float = 0.85  # rule 3: min normalised edit similarity
    title_scorer: Literal["levenshtein", "osa"] = "levenshtein"  # rule 3 edit distance
    year_tolerance: int = 1  # rules 3-4: max |year difference| of two linked records
    max_year_span: int = 2  # an entity's records never span more years than this
    runtime_tolerance: int = 5  # minutes: weak ids, subtitle +-1 year, year-less titles
    embedding_threshold: float = 0.92  # rule 4: min cosine similarity
    id_title_guard: float = 0.6  # rule 2: below this title similarity an id is weak evidence
    cache_size: int = 10_000  # resolution cache entries (LRU)
    cache_ttl_s: float = 3600.0  # resolution cache time to live, seconds
    index_kind: Literal["flat", "hnsw"] = "hnsw"  # rule 4 ANN index over record vectors
    hnsw_m: int = 32  # hnsw graph degree
    ef_search: int = 64  # hnsw query candidate list (recall knob)
    candidates: int = 5  # rule 4: neighbours fetched per query


@dataclass(frozen=True, slots=True)
class Resolution:
    """Outcome for one record: the entity, the rule that decided and its confidence."""

    entity_id: str
    rule: str  # one of RULES
    confidence: float
    similarity: float | None = None  # title similarity (rules 2-3) or cosine (rule 4)
    conflicts: tuple[str, ...] = ()  # ids owned by another entity, e.g. "imdb_id:tt0111161"

    @property
    def is_new(self) -> bool:
        """Whether no evidence linked the record to any other record or entity."""
        return self.rule == "new"


@dataclass(frozen=True, slots=True)
class BatchResolution:
    """A batch's resolutions (input order), the evidence accepted and the entity merges."""

    resolutions: list[Resolution]
    links: list[Link]  # accepted links; endpoints "r:<record key>" or "e:<entity id>"
    merged: dict[str, str] = field(default_factory=dict)  # absorbed entity id -> survivor


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


def _title_node(ref: str, titles: Iterable[str], years: Iterable[int | None],
                runtimes: Iterable[int | None], ids: Iterable[tuple[str, str]]) -> Node:
    node = Node(ref)
    for title in titles:
        forms = title_forms(title)
        node.keys.update(forms.keys)
        if forms.head:
            node.heads.add(forms.head)
    node.years.update(int(y) for y in years if y is not None)
    node.runtimes.update(int(r) for r in runtimes if r is not None)
    node.ids.update(ids)
    return node


def record_node(record: CanonicalRecord) -> Node:
    """The matcher's view of one record (ref ``"r:<platform>:<id>"``)."""
    ids = [(f"platform:{record.platform_id}", record.platform_content_id)]
    ids += [(t, record.external_ids[t]) for t in _ID_TYPES if record.external_ids.get(t)]
    return _title_node(f"r:{record.key}", [record.title], [record.release_year],
                       [record.runtime_minutes], ids)


class EntityResolver:
    """Stateful resolver over the entities seen so far (see module docstring).

    Args:
        config: thresholds and caches.
        encoder: text encoder for rule 4 (required when ``"embedding"`` is enabled).
        clock: seconds clock of the cache TTL (``time.monotonic``).

    Raises:
        ConfigError: an unknown rule or scorer, or rule 4 without an encoder.
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
        if self.config.title_scorer not in _SCORERS:
            raise ConfigError(f"unknown title_scorer {self.config.title_scorer!r}; "
                              f"expected one of {sorted(_SCORERS)}")
        self.encoder = encoder
        self._scorer = _SCORERS[self.config.title_scorer]
        self.entities: dict[str, Node] = {}  # entity id -> everything its records brought
        self._blocks = Blocks()
        self._ids: dict[tuple[str, str], str] = {}  # (id type, value) -> owning entity
        self._weights: dict[tuple[str, str], Counter[str]] = {}  # id -> records per entity
        self._cache = _TTLCache(self.config.cache_size, self.config.cache_ttl_s, clock)
        self._index: Any = None
        self._vector_owner: list[str] = []  # index row -> entity id (or record ref in a batch)
        self._pending: list[tuple[str, str, str, float]] = []

    # ---- public --------------------------------------------------------------------------
    def resolve(self, record: CanonicalRecord, *,
                vector: NDArray[np.float32] | None = None) -> Resolution:
        """Resolve one record (a webhook event) against everything known; cached 1 h."""
        cached = self._cache.get(record.key)
        if cached is not None and cached.entity_id in self.entities:
            self._absorb(cached.entity_id, [record_node(record)])
            return cached
        vectors = None if vector is None else np.asarray(vector, np.float32)[None, :]
        return self.resolve_batch([record], vectors=vectors).resolutions[0]

    def resolve_many(self, records: Sequence[CanonicalRecord], *,
                     vectors: NDArray[np.float32] | None = None,
                     progress: Callable[[int], None] | None = None) -> list[Resolution]:
        """Resolve a batch (see :meth:`resolve_batch`); returns the resolutions only."""
        out = self.resolve_batch(records, vectors=vectors).resolutions
        if progress is not None:
            progress(len(records))
        return out

    def resolve_batch(self, records: Sequence[CanonicalRecord], *,
                      vectors: NDArray[np.float32] | None = None) -> BatchResolution:
        """Resolve ``records`` together with the known entities, independent of their order.

        Args:
            records: normalised records (a key seen twice is one record with both titles).
            vectors: identity-text vectors, one row per record (encoded here when needed).

        Raises:
            ValueError: ``vectors`` not aligned with ``records``.
        """
        if vectors is not None and len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors for {len(records)} records")
        batch: dict[str, Node] = {}
        for rec in records:
            node = record_node(rec)
            if node.ref in batch:
                _fold(batch[node.ref], node)
            else:
                batch[node.ref] = node
        order = sorted(batch)
        nodes: dict[str, Node] = {f"e:{e}": n for e, n in self.entities.items()} | batch
        blocks = Blocks()
        for ref in order:
            blocks.add(batch[ref])
        cfg = self.config
        links = candidate_links([batch[r] for r in order], nodes, [self._blocks, blocks],
                                LinkConfig(cfg.fuzzy_threshold, cfg.year_tolerance,
                                           cfg.id_title_guard, cfg.runtime_tolerance, cfg.rules),
                                self._scorer)
        if "embedding" in cfg.rules:
            links += self._embedding_links(records, vectors, batch, nodes, links)
        clusters, accepted = cluster(nodes, links, max_year_span=cfg.max_year_span,
                                     year_tolerance=cfg.year_tolerance,
                                     runtime_tolerance=cfg.runtime_tolerance)
        components: dict[str, list[str]] = {}
        for ref in order:
            components.setdefault(clusters.find(ref), []).append(ref)
        for entity_id in sorted(self.entities):
            root = clusters.find(f"e:{entity_id}")
            if root in components:
                components[root].append(f"e:{entity_id}")
        entity_of, merged = self._commit(components, batch)
        return BatchResolution(self._resolutions(records, batch, entity_of, accepted),
                               accepted, merged)

    def add_entity(self, entity_id: str, titles: Iterable[str], years: Iterable[int | None],
                   ids: Iterable[tuple[str, str]] = (), *,
                   vector: NDArray[np.float32] | None = None,
                   runtimes: Iterable[int | None] = ()) -> None:
        """Register an existing catalog entity (bootstrapping from the store).

        Idempotent: registering a known entity again (the serving workers re-read every
        committed catalog change, see :mod:`sona.serving.catalog_writes`) only adds the
        titles, years, runtimes and ids it did not have; an id counts as one record of the
        entity however often it is registered, and ``vector`` is indexed only for an
        entity that is new or brought a new title key.
        """
        node = _title_node(f"e:{entity_id}", titles, years, runtimes, ids)
        known = self.entities.get(entity_id)
        new_title = known is None or not node.keys <= known.keys
        self._absorb(entity_id, [node])
        for ident in node.ids:
            self._ids.setdefault(ident, entity_id)
            votes = self._weights.setdefault(ident, Counter())
            votes[entity_id] = max(votes[entity_id], 1)
        if vector is not None and new_title and "embedding" in self.config.rules:
            self._index_add([entity_id], np.asarray(vector, np.float32)[None, :])

    def remove_entity(self, entity_id: str) -> None:
        """Forget an entity (deleted from the catalog): no rule will return it again."""
        node = self.entities.pop(entity_id, None)
        if node is not None:
            self._blocks.remove(node)
        for k in [k for k, e in self._ids.items() if e == entity_id]:
            del self._ids[k]
        self._vector_owner = ["" if o == entity_id else o for o in self._vector_owner]
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

    # ---- rule 4 --------------------------------------------------------------------------
    def _embedding_links(self, records: Sequence[CanonicalRecord],
                         vectors: NDArray[np.float32] | None, batch: dict[str, Node],
                         nodes: dict[str, Node], links: list[Link]) -> list[Link]:
        """Rule 4 for the records no other rule reached: nearest vectors, years, digits."""
        if vectors is None:
            vectors = self.encode_records(records)
        if vectors is None or len(vectors) == 0:
            return []
        row_of = {f"r:{rec.key}": i for i, rec in enumerate(records)}
        order = sorted(row_of)
        self._index_add(order, np.asarray(vectors, np.float32)[[row_of[r] for r in order]])
        reached = {x for link in links if RANK[link.rule] < RANK["embedding"]
                   for x in (link.a, link.b)}
        lonely = [r for r in order if r not in reached]
        if not lonely or self._index is None:
            return []
        k = min(self.config.candidates + 1, len(self._index))
        recs = self._index.search(np.asarray(vectors, np.float32)[[row_of[r] for r in lonely]], k)
        out = []
        for ref, row_ids, row_scores in zip(lonely, recs.ids, recs.scores, strict=True):
            node = batch[ref]
            digits = {numbers_of(key) for key in node.keys}
            for vid, score in zip(row_ids, row_scores, strict=True):
                if np.isnan(score) or score < self.config.embedding_threshold:
                    continue
                owner = self._vector_owner[int(str(vid)[1:])]
                target = owner if owner.startswith("r:") else f"e:{owner}"
                other = nodes.get(target)
                if other is None or target == ref:
                    continue
                if _years_close(node.years, other.years, self.config.year_tolerance) is False:
                    continue
                if not digits & {numbers_of(key) for key in other.keys}:
                    continue
                out.append(Link(ref, target, "embedding", float(score)))
        return out

    def _index_add(self, owners: Sequence[str], vecs: NDArray[np.float32]) -> None:
        if self._index is None:
            from sona.search.faiss_index import FaissIndex, FaissIndexConfig

            cfg = self.config
            self._index = FaissIndex(FaissIndexConfig(
                kind=cfg.index_kind, metric="cosine", hnsw_m=cfg.hnsw_m,
                ef_search=cfg.ef_search, kind_of_ids="vector"))
        start = len(self._vector_owner)
        self._index.add(np.array([f"v{start + i}" for i in range(len(owners))]), vecs)
        self._vector_owner.extend(owners)

    # ---- state ---------------------------------------------------------------------------
    def _commit(self, components: dict[str, list[str]],
                batch: dict[str, Node]) -> tuple[dict[str, str], dict[str, str]]:
        """Entity ids of the components, merged entities, folded nodes, id owners, mappings."""
        entity_of: dict[str, str] = {}
        merged: dict[str, str] = {}
        for refs in components.values():
            known = sorted(r[2:] for r in refs if r.startswith("e:"))
            records = [r for r in refs if r.startswith("r:")]
            if known:
                survivor = known[0]
            else:
                survivor = str(uuid.uuid5(_NAMESPACE, min(records)[2:]))
            for absorbed in known[1:]:
                merged[absorbed] = survivor
                node = self.entities.pop(absorbed)
                self._blocks.remove(node)
                self._cache.drop_entity(absorbed)
                self._ids = {k: survivor if e == absorbed else e for k, e in self._ids.items()}
                self._absorb(survivor, [node])
                self._pending += [(v, t, survivor, 1.0) for t, v in sorted(node.ids)]
                for ident in node.ids:
                    votes = self._weights.setdefault(ident, Counter())
                    votes[survivor] += votes.pop(absorbed, 0)
                self._vector_owner = [survivor if o == absorbed else o
                                      for o in self._vector_owner]
            self._absorb(survivor, [batch[r] for r in records])
            for r in records:
                entity_of[r] = survivor
        self._vector_owner = [entity_of.get(o, o) for o in self._vector_owner]
        touched: set[tuple[str, str]] = set()
        for ref in sorted(batch):
            for ident in batch[ref].ids:
                self._weights.setdefault(ident, Counter())[entity_of[ref]] += 1
                touched.add(ident)
        for ident in sorted(touched):  # the majority of records carrying an id owns it
            votes = Counter({e: w for e, w in self._weights[ident].items()
                             if e in self.entities})
            owner = self._ids.get(ident)  # ties keep the earlier owner
            ranked = sorted(votes, key=lambda e: (-votes[e], e != owner, e))
            self._ids[ident] = ranked[0]
        return entity_of, merged

    def _absorb(self, entity_id: str, parts: Iterable[Node]) -> None:
        node = self.entities.get(entity_id)
        if node is not None:
            self._blocks.remove(node)
        else:
            node = Node(f"e:{entity_id}")
            self.entities[entity_id] = node
        for part in parts:
            _fold(node, part)
        self._blocks.add(node)

    def _resolutions(self, records: Sequence[CanonicalRecord], batch: dict[str, Node],
                     entity_of: dict[str, str], accepted: list[Link]) -> list[Resolution]:
        best: dict[str, Link] = {}
        for link in accepted:
            for end in (link.a, link.b):
                if end in batch and (end not in best or link.order() < best[end].order()):
                    best[end] = link
        out: dict[str, Resolution] = {}
        for ref, node in batch.items():
            entity_id = entity_of[ref]
            conflicts = tuple(f"{t}:{v}" for t, v in sorted(node.ids)
                              if t in _ID_TYPES and self._ids.get((t, v)) != entity_id)
            top = best.get(ref)
            if top is None:
                res = Resolution(entity_id, "new", 1.0, None, conflicts)
            else:
                rule = "external_id" if top.rule == "weak_id" else top.rule
                res = Resolution(entity_id, rule, self._confidence(rule, top.score),
                                 top.score, conflicts)
            out[ref] = res
            self._cache.put(ref[2:], res)
            bad = set(conflicts)
            self._pending += [(v, t, entity_id, res.confidence) for t, v in sorted(node.ids)
                              if f"{t}:{v}" not in bad]
        return [out[f"r:{rec.key}"] for rec in records]

    def _confidence(self, rule: str, score: float) -> float:
        cfg = self.config
        if rule in ("platform_id", "eidr"):
            return 1.0
        if rule == "external_id":
            return 0.99
        if rule == "fuzzy_title":
            return _linear(score, cfg.fuzzy_threshold, 1.0, 0.90, 0.98)
        if rule == "subtitle":
            return 0.92
        return _linear(score, cfg.embedding_threshold, 1.0, 0.85, 0.95)


def _fold(into: Node, part: Node) -> None:
    into.keys |= part.keys
    into.heads |= part.heads
    into.years |= part.years
    into.runtimes |= part.runtimes
    into.ids |= part.ids


__all__ = [
    "MATCH_RULES", "RULES", "BatchResolution", "Encoder", "EntityResolver", "Resolution",
    "ResolverConfig", "identity_text", "record_node",
]
