"""The ingestion pipeline: raw feeds -> normalise -> resolve -> merge -> embed -> store + index.

:class:`IngestPipeline` runs a whole feed batch (``sona ingest run``); the webhook processor
(:mod:`sona.ingest.webhooks`) pushes single events through the same steps. Both report index
changes through one callback, :data:`IndexUpdater`, so the search index (or anything else)
follows the catalog without the pipeline knowing which index it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from sona.catalog.schema import ContentItem, is_seed_id, utcnow
from sona.catalog.store import CatalogStore
from sona.errors import DataError
from sona.ingest.evaluation import ResolutionReport, evaluate_resolution, record_links
from sona.ingest.merge import apply_record, item_from_records, merge_items
from sona.ingest.normalizers import normalize
from sona.ingest.records import CanonicalRecord, RawRecord
from sona.ingest.resolution import Encoder, EntityResolver, ResolverConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """Items to (re)index with their vectors, and items to drop from the index."""

    upsert_ids: list[str]
    vectors: NDArray[np.float32] | None  # (len(upsert_ids), d), None without an encoder
    payloads: list[dict[str, Any]]  # {id, title, genres} per upserted item (SPEC §3.5)
    removed_ids: list[str] = field(default_factory=list)


IndexUpdater = Callable[[IndexUpdate], None]


def content_text(item: ContentItem) -> str:
    """The text embedded for search: title and overview (SPEC §3.5)."""
    return f"{item.title}. {item.overview}" if item.overview else item.title


def embed_items(items: Sequence[ContentItem], encoder: Any) -> NDArray[np.float32] | None:
    """Set ``embedding``/``embedding_model``/``embedding_version`` on ``items``; returns them."""
    if encoder is None or not items:
        return None
    vectors = np.asarray(encoder.encode([content_text(i) for i in items]), np.float32)
    model, version = str(encoder.model_name), str(encoder.model_version)
    for item, vec in zip(items, vectors, strict=True):
        item.embedding = vec.tolist()
        item.embedding_model = model
        item.embedding_version = version
    return vectors


def index_update_for(items: Sequence[ContentItem], vectors: NDArray[np.float32] | None,
                     removed: Sequence[str] = ()) -> IndexUpdate:
    """The :class:`IndexUpdate` announcing ``items`` (and ``removed`` ids)."""
    return IndexUpdate(
        upsert_ids=[i.canonical_id for i in items], vectors=vectors,
        payloads=[{"id": i.canonical_id, "title": i.title, "genres": list(i.genres)}
                  for i in items], removed_ids=list(removed))


def load_resolver(store: CatalogStore, config: ResolverConfig | None = None, *,
                  encoder: Encoder | None = None) -> EntityResolver:
    """A resolver that knows every entity and mapping already in ``store``."""
    resolver = EntityResolver(config, encoder=encoder)
    register_items(resolver, list(store.iter_items()), store.mappings())
    log.info("resolver loaded %d entities from %s", len(resolver.entities), store.url)
    return resolver


def register_items(resolver: EntityResolver, items: Sequence[ContentItem],
                   mappings: Sequence[tuple[str, str, str, float]] = ()) -> None:
    """Make catalog ``items`` (and the stored ``mappings`` of their external ids) known
    entities of ``resolver``, so later records resolve onto them (the MovieLens seeds)."""
    ids_of: dict[str, list[tuple[str, str]]] = {}
    for external_id, id_type, entity_id, _ in mappings:
        ids_of.setdefault(entity_id, []).append((id_type, external_id))
    vectors = resolver.encode_titles([i.title for i in items])
    for j, item in enumerate(items):
        ext = item.external_ids
        own = [(t, v) for t, v in (("eidr_id", ext.eidr_id), ("imdb_id", ext.imdb_id),
                                   ("tmdb_id", ext.tmdb_id)) if v]
        own += [(f"platform:{p}", pid) for p, pid in ext.platform_ids.items()]
        titles = [item.title, *item.alternate_titles.values()]
        titles += [item.original_title] if item.original_title else []
        resolver.add_entity(item.canonical_id, titles, [item.release_year],
                            own + ids_of.get(item.canonical_id, []),
                            vector=None if vectors is None else vectors[j],
                            runtimes=[item.runtime_minutes])


def refresh_resolver(resolver: EntityResolver, store: CatalogStore,
                     ids: Sequence[str] | None = None) -> None:
    """Make ``resolver`` reflect the committed state of the catalog items ``ids`` (all of
    ``store`` and every entity ``resolver`` knows when ``None``): items still stored are
    registered with their stored mappings (:meth:`EntityResolver.add_entity` is
    idempotent, so an item the resolver knows already only adds what it lacked), items no
    longer stored are forgotten. What a worker process learns of another's catalog writes
    (:mod:`sona.serving.catalog_writes`)."""
    if ids is None:
        items = list(store.iter_items())
        mappings = store.mappings()
        wanted = set(resolver.entities) | {i.canonical_id for i in items}
    else:
        wanted = set(ids)
        items = store.find_many(wanted)
        mappings = store.mappings(i.canonical_id for i in items)
    stored = {i.canonical_id for i in items}
    for gone in sorted(wanted - stored):
        resolver.remove_entity(gone)
    register_items(resolver, items, mappings)


@dataclass(slots=True)
class IngestReport:
    """What one pipeline run did."""

    n_raw: int = 0
    n_normalized: int = 0
    failures: list[str] = field(default_factory=list)  # "record id: problem"
    n_entities: int = 0
    n_created: int = 0
    n_updated: int = 0
    n_merged: int = 0  # known entities absorbed into another by later evidence
    decided_by: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    resolution: ResolutionReport | None = None
    entity_of: dict[str, str] = field(default_factory=dict)  # raw record id -> entity id


class IngestPipeline:
    """Batch ingestion into a catalog store.

    Args:
        store: the catalog database.
        resolver: entity resolver (use :func:`load_resolver` to continue an existing catalog).
        encoder: content encoder for search embeddings (``None`` skips embedding).
        on_index_update: called once with every upserted item and its vector.
        progress: show tqdm progress bars.
    """

    def __init__(self, store: CatalogStore, resolver: EntityResolver, *,
                 encoder: Any = None, on_index_update: IndexUpdater | None = None,
                 progress: bool = False, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.resolver = resolver
        self.encoder = encoder
        self.on_index_update = on_index_update
        self.progress = progress
        self.clock = clock

    def run(self, raws: Sequence[RawRecord], *,
            truth: Mapping[str, int] | None = None) -> IngestReport:
        """Ingest ``raws`` in order; with ``truth`` also score the resolution."""
        report = IngestReport(n_raw=len(raws))
        t0 = time.perf_counter()
        records, kept = [], []
        for raw in tqdm(raws, desc="normalise", unit="rec", disable=not self.progress):
            try:
                records.append(normalize(raw))
                kept.append(raw.id)
            except DataError as exc:
                report.failures.append(f"{raw.id}: {exc}")
        report.n_normalized = len(records)
        if report.failures:
            log.warning("%d raw records failed to normalise, first: %s",
                        len(report.failures), report.failures[0])
        t1 = time.perf_counter()
        vectors = self.resolver.encode_records(records)
        t2 = time.perf_counter()
        batch = self.resolver.resolve_batch(records, vectors=vectors)
        resolutions = batch.resolutions
        for raw_id, res in zip(kept, resolutions, strict=True):
            report.decided_by[res.rule] = report.decided_by.get(res.rule, 0) + 1
            report.entity_of[raw_id] = res.entity_id
        if truth is not None:
            raw_id = {rec.key: rid for rec, rid in zip(records, kept, strict=True)}
            links = [(raw_id[a], raw_id[b], rule) for a, b, rule in record_links(batch.links)
                     if a in raw_id and b in raw_id]
            report.resolution = evaluate_resolution(kept, resolutions, truth,
                                                    rules=self.resolver.config.rules, links=links)
        t3 = time.perf_counter()
        groups: dict[str, list[CanonicalRecord]] = {}
        for rec, res in zip(records, resolutions, strict=True):
            groups.setdefault(res.entity_id, []).append(rec)
        now = self.clock()
        items = []
        removed = []
        for absorbed, survivor in sorted(batch.merged.items()):  # later evidence joined them
            if is_seed_id(absorbed):  # a MovieLens item stays: models and qrels name it, and
                continue  # ML-100K lists a few films twice (both ids keep their ratings)
            gone = self.store.find(absorbed)
            if gone is None:
                continue
            kept_item = self.store.find(survivor)
            if kept_item is not None:
                self.store.put(merge_items(kept_item, gone, now=now))
            self.store.delete(absorbed)
            removed.append(absorbed)
        report.n_merged = len(removed)
        for entity_id, recs in tqdm(groups.items(), desc="merge", unit="item",
                                    disable=not self.progress):
            existing = self.store.find(entity_id)
            if existing is None:
                items.append(item_from_records(entity_id, recs, now=now))
                report.n_created += 1
            else:
                for rec in recs:
                    existing = apply_record(existing, rec, now=now)
                items.append(existing)
                report.n_updated += 1
        t4 = time.perf_counter()
        item_vectors = embed_items(items, self.encoder)
        t5 = time.perf_counter()
        self.store.put_many(items)
        self.store.upsert_mappings(self.resolver.drain_mappings())
        if self.on_index_update is not None and (items or removed):
            self.on_index_update(index_update_for(items, item_vectors, removed))
        t6 = time.perf_counter()
        report.n_entities = len(groups)
        report.seconds = {"normalise": t1 - t0, "identity_embed": t2 - t1, "resolve": t3 - t2,
                          "merge": t4 - t3, "content_embed": t5 - t4, "store": t6 - t5}
        log.info("ingested %d records into %d entities (%d new)", len(records), len(groups),
                 report.n_created)
        return report


__all__ = [
    "IndexUpdate", "IndexUpdater", "IngestPipeline", "IngestReport", "content_text",
    "embed_items", "index_update_for", "load_resolver", "refresh_resolver", "register_items",
]
