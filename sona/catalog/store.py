"""``CatalogStore``: CRUD over canonical content items, entity mappings and the audit log.

SQLite is the default (a file URL, WAL journal so readers never block the writer);
PostgreSQL works by passing its URL (``postgresql+psycopg://user@host/db``). Every mutation
of a content item writes an audit row in the same transaction, so the log cannot miss a change.
After the transaction commits, each function in :attr:`CatalogStore.listeners` gets the ids
of the items written or deleted (in-memory views such as the served availability index
follow the catalog this way). A store sees its own commits only: the serving app's other
worker processes write the same database through their own stores, so their commits reach
this store's listeners through :meth:`CatalogStore.notify`, called by the relay
(:mod:`sona.serving.catalog_relay`) that :attr:`CatalogStore.on_commit` feeds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from sona.catalog.models import AuditRow, Base, ContentRow, EntityMappingRow
from sona.catalog.schema import Availability, ContentItem, utcnow
from sona.db import make_engine
from sona.errors import SonaError, UnknownIdError

log = logging.getLogger(__name__)

#: the one catalog: `sona serve` reads catalog.db next to its database (serving/sona.db), and
#: `sona ingest run`, `sona search eval/query` write and read the same file by default
DEFAULT_URL = "sqlite:///serving/catalog.db"
_JSON_FIELDS = ("alternate_titles", "keywords", "themes", "audio_languages", "genres",
                "external_ids", "credits", "images", "series", "availability", "source_platforms")
# fields a PATCH may not touch: identity and bookkeeping
_IMMUTABLE = frozenset({"canonical_id", "created_at"})
# ids per IN (...) clause (SQLite allows 32766 bound parameters, older builds 999)
_IN_CHUNK = 500


class CatalogConflictError(SonaError, ValueError):
    """A content item with this id already exists."""


class AuditRecord(BaseModel):
    """One audit row as returned by :meth:`CatalogStore.audit_log` (SPEC §5)."""

    model_config = ConfigDict(frozen=True)

    id: str
    timestamp: datetime
    user_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None


class Actor(BaseModel):
    """Who performs a mutation, recorded in the audit row."""

    model_config = ConfigDict(frozen=True)

    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor(user_id="system:ingest")

#: called after a committed write with the canonical ids written or deleted
ChangeListener = Callable[[list[str]], None]


class CatalogStore:
    """The catalog database (see module docstring).

    Args:
        url: SQLAlchemy URL; SQLite files get their folder created, WAL and a busy timeout
            (:func:`sona.db.make_engine`).
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # told the changed ids after each committed write (see module docstring)
        self.listeners: list[ChangeListener] = []
        # told the ids of this store's own commits, after the listeners (not those given to
        # notify): the serving app publishes them to its other worker processes
        self.on_commit: ChangeListener | None = None

    def _changed(self, ids: list[str]) -> None:
        self.notify(ids)
        if self.on_commit is not None:
            try:
                self.on_commit(ids)
            except Exception:  # the write is committed: report, do not fail it
                log.exception("catalog commit hook failed for %d id(s)", len(ids))

    def notify(self, ids: list[str]) -> None:
        """Tell the :attr:`listeners` that ``ids`` were written or deleted (committed).

        Runs after each of this store's commits; the serving relay calls it for a commit
        another worker's store made to the same database (:attr:`on_commit` is not told,
        so a relayed change is never published again). Listeners re-read what they need.
        """
        for listener in list(self.listeners):
            try:
                listener(ids)
            except Exception:  # a broken view must not undo or fail a committed write
                log.exception("catalog change listener failed for %d id(s)", len(ids))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as sess:
            yield sess

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    # ---- content items ---------------------------------------------------------------
    def add(self, item: ContentItem, *, actor: Actor = SYSTEM) -> ContentItem:
        """Insert a new item (audit ``content_created``).

        Raises:
            CatalogConflictError: an item with ``item.canonical_id`` exists.
        """
        with self.session() as sess:
            if sess.get(ContentRow, item.canonical_id) is not None:
                raise CatalogConflictError(f"content {item.canonical_id} already exists")
            sess.add(ContentRow(**_row_values(item)))
            self._audit(sess, "content_created", item.canonical_id, {"title": item.title}, actor)
        self._changed([item.canonical_id])
        return item

    def put_many(self, items: Iterable[ContentItem], *, actor: Actor = SYSTEM) -> int:
        """Insert or replace items in one transaction (audit created/updated per item)."""
        ids: list[str] = []
        with self.session() as sess:
            for item in items:
                row = sess.get(ContentRow, item.canonical_id)
                values = _row_values(item)
                if row is None:
                    sess.add(ContentRow(**values))
                    action = "content_created"
                else:
                    values["created_at"] = row.created_at
                    for key, value in values.items():
                        setattr(row, key, value)
                    action = "content_updated"
                self._audit(sess, action, item.canonical_id, {"title": item.title}, actor)
                ids.append(item.canonical_id)
        if ids:
            self._changed(ids)
        return len(ids)

    def put(self, item: ContentItem, *, actor: Actor = SYSTEM) -> ContentItem:
        """Insert or replace one item."""
        self.put_many([item], actor=actor)
        return item

    def find(self, canonical_id: str) -> ContentItem | None:
        """The item, or ``None`` when absent."""
        with self.session() as sess:
            row = sess.get(ContentRow, canonical_id)
            return None if row is None else _item(row)

    def get(self, canonical_id: str) -> ContentItem:
        """The item.

        Raises:
            UnknownIdError: no item has this id.
        """
        item = self.find(canonical_id)
        if item is None:
            raise UnknownIdError("content", [canonical_id])
        return item

    def get_many(self, canonical_ids: Sequence[str]) -> list[ContentItem]:
        """Items in the order of ``canonical_ids``; raises UnknownIdError listing the absent."""
        with self.session() as sess:
            rows = sess.scalars(select(ContentRow).where(
                ContentRow.canonical_id.in_(list(canonical_ids)))).all()
            found = {r.canonical_id: _item(r) for r in rows}
        missing = [i for i in canonical_ids if i not in found]
        if missing:
            raise UnknownIdError("content", missing)
        return [found[i] for i in canonical_ids]

    def find_many(self, canonical_ids: Iterable[str]) -> list[ContentItem]:
        """The items of ``canonical_ids`` that exist, in id order (absent ids are skipped)."""
        wanted = sorted(set(canonical_ids))
        found: list[ContentItem] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            with self.session() as sess:
                rows = sess.scalars(select(ContentRow).where(ContentRow.canonical_id.in_(
                    wanted[start:start + _IN_CHUNK])).order_by(ContentRow.canonical_id)).all()
                found += [_item(r) for r in rows]
        return found

    def update(self, canonical_id: str, changes: Mapping[str, Any], *,
               actor: Actor = SYSTEM, now: datetime | None = None) -> ContentItem:
        """Apply field ``changes`` (validated by the schema); audit ``content_updated``.

        Raises:
            UnknownIdError: no such item. ValueError: an unknown/immutable field or bad value.
        """
        bad = sorted(set(changes) - set(ContentItem.model_fields) | (set(changes) & _IMMUTABLE))
        if bad:
            raise ValueError(f"cannot update field(s) {bad} of a content item")
        with self.session() as sess:
            row = sess.get(ContentRow, canonical_id)
            if row is None:
                raise UnknownIdError("content", [canonical_id])
            stamp = now or utcnow()
            merged = _item(row).model_dump() | dict(changes)
            merged |= {"updated_at": stamp, "last_updated": stamp}
            item = ContentItem.model_validate(merged)
            for key, value in _row_values(item).items():
                setattr(row, key, value)
            self._audit(sess, "content_updated", canonical_id,
                        {"fields": sorted(changes)}, actor)
        self._changed([canonical_id])
        return item

    def set_availability(self, canonical_id: str, platform: str, offers: Sequence[Availability],
                         *, actor: Actor = SYSTEM) -> ContentItem:
        """Replace ``platform``'s offers of an item (other platforms are kept)."""
        item = self.get(canonical_id)
        kept = [a for a in item.availability if a.platform != platform]
        sources = sorted({a.platform for a in kept} | ({platform} if offers else set()))
        return self.update(canonical_id, {"availability": kept + list(offers),
                                          "source_platforms": sources}, actor=actor)

    def delete(self, canonical_id: str, *, actor: Actor = SYSTEM) -> None:
        """Delete an item and its entity mappings; audit ``content_deleted``.

        Raises:
            UnknownIdError: no such item.
        """
        with self.session() as sess:
            row = sess.get(ContentRow, canonical_id)
            if row is None:
                raise UnknownIdError("content", [canonical_id])
            title = row.title
            sess.delete(row)
            sess.execute(delete(EntityMappingRow).where(EntityMappingRow.entity_id == canonical_id))
            self._audit(sess, "content_deleted", canonical_id, {"title": title}, actor)
        self._changed([canonical_id])

    def list_items(self, *, limit: int = 100, offset: int = 0, content_type: str | None = None,
             platform: str | None = None) -> list[ContentItem]:
        """Items ordered by title (then id); ``platform`` keeps items that platform offers."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit}, {offset}")
        stmt = select(ContentRow).order_by(ContentRow.title, ContentRow.canonical_id)
        if content_type is not None:
            stmt = stmt.where(ContentRow.content_type == content_type)
        with self.session() as sess:
            if platform is None:
                rows = sess.scalars(stmt.offset(offset).limit(limit)).all()
                return [_item(r) for r in rows]
            # JSON containment differs per backend: filter in Python, page afterwards
            items = [_item(r) for r in sess.scalars(stmt)]
        hits = [i for i in items if platform in i.source_platforms]
        return hits[offset:offset + limit]

    def iter_items(self, batch_size: int = 500) -> Iterator[ContentItem]:
        """Every item, streamed in id order in batches of ``batch_size``."""
        last = ""
        while True:
            with self.session() as sess:
                rows = sess.scalars(select(ContentRow).where(ContentRow.canonical_id > last)
                                    .order_by(ContentRow.canonical_id).limit(batch_size)).all()
                batch = [_item(r) for r in rows]
            if not batch:
                return
            yield from batch
            last = batch[-1].canonical_id

    def set_quality_scores(self, scores: Mapping[str, float], *, actor: Actor = SYSTEM) -> int:
        """Bulk-set ``data_quality_score`` (one audit row for the batch); returns #changed.

        Bookkeeping times are untouched: a recomputed score is not a content update, and
        bumping ``last_updated`` would reset the freshness the score decays with.
        """
        changed_ids: list[str] = []
        with self.session() as sess:
            rows = sess.scalars(select(ContentRow).where(
                ContentRow.canonical_id.in_(list(scores)))).all()
            for row in rows:
                value = float(scores[row.canonical_id])
                if not 0.0 <= value <= 1.0:
                    raise ValueError(
                        f"quality score of {row.canonical_id} is {value}, not in [0, 1]")
                if row.data_quality_score != value:
                    row.data_quality_score = value
                    changed_ids.append(row.canonical_id)
            changed = len(changed_ids)
            self._audit(sess, "admin_action", None, {"job": "quality_recalculation",
                                                     "items": len(rows), "changed": changed},
                        actor, resource_type="catalog")
        if changed_ids:
            self._changed(changed_ids)
        return changed

    def count(self) -> int:
        """Number of content items."""
        with self.session() as sess:
            return int(sess.scalar(select(func.count()).select_from(ContentRow)) or 0)

    # ---- entity mappings -------------------------------------------------------------
    def upsert_mappings(self, rows: Iterable[tuple[str, str, str, float]]) -> int:
        """Upsert ``(external_id, id_type, entity_id, confidence)`` rows; returns how many.

        Repeated keys keep their last row (PostgreSQL rejects one statement touching a row
        twice).
        """
        latest = {(e, t): (ent, float(c)) for e, t, ent, c in rows}
        stamp = utcnow()
        values = [{"external_id": e, "id_type": t, "entity_id": ent, "confidence": c,
                   "updated_at": stamp} for (e, t), (ent, c) in latest.items()]
        if not values:
            return 0
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"entity mapping upsert supports sqlite and postgresql, not {dialect}")
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(EntityMappingRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["external_id", "id_type"],
            set_={"entity_id": stmt.excluded.entity_id, "confidence": stmt.excluded.confidence,
                  "updated_at": stmt.excluded.updated_at})
        with self.session() as sess:
            sess.execute(stmt, values)
        return len(values)

    def lookup_mapping(self, external_id: str, id_type: str) -> tuple[str, float] | None:
        """``(entity_id, confidence)`` of an external id, or ``None``."""
        with self.session() as sess:
            row = sess.scalar(select(EntityMappingRow).where(
                EntityMappingRow.external_id == external_id, EntityMappingRow.id_type == id_type))
            return None if row is None else (row.entity_id, row.confidence)

    def mappings(self, entity_ids: Iterable[str] | None = None
                 ) -> list[tuple[str, str, str, float]]:
        """All mappings as ``(external_id, id_type, entity_id, confidence)``, or those of
        the entities ``entity_ids`` only (in insertion order either way)."""
        stmt = select(EntityMappingRow).order_by(EntityMappingRow.id)
        if entity_ids is None:
            with self.session() as sess:
                rows = sess.scalars(stmt).all()
                return [(r.external_id, r.id_type, r.entity_id, r.confidence) for r in rows]
        wanted = sorted(set(entity_ids))
        out: list[tuple[int, tuple[str, str, str, float]]] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            with self.session() as sess:
                rows = sess.scalars(stmt.where(EntityMappingRow.entity_id.in_(
                    wanted[start:start + _IN_CHUNK]))).all()
                out += [(r.id, (r.external_id, r.id_type, r.entity_id, r.confidence))
                        for r in rows]
        return [row for _, row in sorted(out)]

    # ---- audit log -------------------------------------------------------------------
    def audit(self, action: str, resource_type: str, resource_id: str | None = None,
              details: Mapping[str, Any] | None = None, *, actor: Actor = SYSTEM) -> None:
        """Write one audit row in its own transaction."""
        with self.session() as sess:
            self._audit(sess, action, resource_id, dict(details or {}), actor,
                        resource_type=resource_type)

    def audit_log(self, *, user_id: str | None = None, action: str | None = None,
                  resource_type: str | None = None, resource_id: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  limit: int = 100, offset: int = 0) -> list[AuditRecord]:
        """Audit rows matching every given filter, newest first (``since <= t < until``)."""
        stmt = select(AuditRow).order_by(AuditRow.timestamp.desc(), AuditRow.id)
        filters = {AuditRow.user_id: user_id, AuditRow.action: action,
                   AuditRow.resource_type: resource_type, AuditRow.resource_id: resource_id}
        for column, value in filters.items():
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(AuditRow.timestamp >= since)
        if until is not None:
            stmt = stmt.where(AuditRow.timestamp < until)
        with self.session() as sess:
            rows = sess.scalars(stmt.offset(offset).limit(limit)).all()
            return [AuditRecord.model_validate(r, from_attributes=True) for r in rows]

    @staticmethod
    def _audit(sess: Session, action: str, resource_id: str | None, details: dict[str, Any],
               actor: Actor, *, resource_type: str = "content") -> None:
        sess.add(AuditRow(id=str(uuid.uuid4()), timestamp=utcnow(), user_id=actor.user_id,
                          action=action, resource_type=resource_type, resource_id=resource_id,
                          details=details, ip=actor.ip, user_agent=actor.user_agent))


def _row_values(item: ContentItem) -> dict[str, Any]:
    data = item.model_dump(mode="python", exclude={"embedding"})
    for key in _JSON_FIELDS:
        value = getattr(item, key)
        data[key] = None if value is None else (
            [v.model_dump(mode="json") for v in value] if key == "availability"
            else value.model_dump(mode="json") if isinstance(value, BaseModel) else value)
    vec = item.embedding
    data["embedding"] = None if vec is None else np.asarray(vec, "<f4").tobytes()
    return data


def _item(row: ContentRow) -> ContentItem:
    data = {c.key: getattr(row, c.key) for c in ContentRow.__table__.columns}
    blob = data.pop("embedding")
    data["embedding"] = None if blob is None else np.frombuffer(blob, "<f4").tolist()
    return ContentItem.model_validate(data)


__all__ = [
    "DEFAULT_URL", "SYSTEM", "Actor", "AuditRecord", "CatalogConflictError", "CatalogStore",
    "ChangeListener",
]
