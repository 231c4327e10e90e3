"""One webhook event through the pipeline: normalise, resolve, merge, embed, store, index.

This is the processor -> pipeline wiring the original never wired up (SPEC §4, §7.10).
``content_added``, ``content_updated`` and ``availability_changed`` carry a raw platform
record; ``content_removed`` names the platform's content id. Removing a title from its last
platform deletes the catalog item and drops it from the index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sona.catalog.schema import utcnow
from sona.catalog.store import CatalogStore
from sona.errors import DataError
from sona.ingest.merge import apply_record, item_from_records, remove_platform
from sona.ingest.normalizers import normalize
from sona.ingest.pipeline import IndexUpdater, embed_items, index_update_for
from sona.ingest.records import RawRecord
from sona.ingest.resolution import EntityResolver

log = logging.getLogger(__name__)

EVENT_TYPES = ("content_added", "content_updated", "availability_changed", "content_removed")


class EventProcessor:
    """Applies webhook events to the catalog.

    Args:
        store: catalog database.
        resolver: entity resolver that knows the catalog (``load_resolver(store)``).
        encoder: content encoder for re-embedding (``None``: no vectors).
        on_index_update: receives every index change.
    """

    def __init__(self, store: CatalogStore, resolver: EntityResolver, *, encoder: Any = None,
                 on_index_update: IndexUpdater | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.resolver = resolver
        self.encoder = encoder
        self.on_index_update = on_index_update
        self.clock = clock

    def process(self, platform: str, event_type: str, payload: dict[str, Any]) -> str | None:
        """Apply one event; returns the affected entity id (``None``: nothing to remove).

        Raises:
            DataError: unknown event type, missing ``data``/``platform_content_id``, or a
                record the platform normaliser rejects (permanent: dead-lettered at once).
        """
        if event_type not in EVENT_TYPES:
            raise DataError(f"unknown webhook event_type {event_type!r}; expected {EVENT_TYPES}")
        if event_type == "content_removed":
            return self._remove(platform, payload)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise DataError(f"{event_type} event from {platform} has no 'data' object")
        now = self.clock()
        raw = RawRecord(id=f"webhook:{platform}", platform=platform, data=data, fetched_at=now)
        record = normalize(raw)
        resolution = self.resolver.resolve(record)
        existing = self.store.find(resolution.entity_id)
        item = (item_from_records(resolution.entity_id, [record], now=now) if existing is None
                else apply_record(existing, record, now=now))
        vectors = embed_items([item], self.encoder)
        self.store.put(item)
        self.store.upsert_mappings(self.resolver.drain_mappings())
        if self.on_index_update is not None:
            self.on_index_update(index_update_for([item], vectors))
        log.info("%s %s -> %s by %s", platform, event_type, item.canonical_id, resolution.rule)
        return item.canonical_id

    def _remove(self, platform: str, payload: dict[str, Any]) -> str | None:
        pcid = payload.get("platform_content_id")
        if not isinstance(pcid, str | int) or str(pcid) == "":
            raise DataError(f"content_removed event from {platform} needs 'platform_content_id'")
        hit = self.store.lookup_mapping(str(pcid), f"platform:{platform}")
        if hit is None:
            log.info("%s removed unknown title %s: nothing to do", platform, pcid)
            return None
        entity_id = hit[0]
        item = self.store.find(entity_id)
        if item is None:
            return None
        updated = remove_platform(item, platform, now=self.clock())
        if updated is None:
            self.store.delete(entity_id)
            self.resolver.remove_entity(entity_id)
            if self.on_index_update is not None:
                self.on_index_update(index_update_for([], None, removed=[entity_id]))
            return entity_id
        vectors = embed_items([updated], self.encoder)
        self.store.put(updated)
        if self.on_index_update is not None:
            self.on_index_update(index_update_for([updated], vectors))
        return entity_id


__all__ = ["EVENT_TYPES", "EventProcessor"]
