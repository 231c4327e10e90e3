"""The append-only user-activity event log (SPEC §5): the training log of served behaviour.

Every event the service sees (playback starts, pauses, completions, progress, content views,
ratings, search clicks, ...) is one row of ``event_log``. Three guarantees:

* **Idempotent by event id.** ``event_id`` is unique; :meth:`EventLog.append` inserts with
  ``ON CONFLICT DO NOTHING ... RETURNING``, so a client that resends a batch after a lost
  acknowledgement stores nothing twice, and the caller learns exactly which ids were new
  (only those go on to update a profile, so a replay never counts twice there either).
* **Durable before acknowledged.** Engines come from :func:`sona.db.make_engine` with
  ``durable=True``: on SQLite a committed append is on disk (``synchronous=FULL``) before
  ``append`` returns, so ``kill -9`` or a power cut loses no acknowledged event; PostgreSQL
  commits are durable by default.
* **Never updated or deleted.** The store has no such method, and the database refuses it:
  triggers abort any ``UPDATE`` or ``DELETE`` (and ``TRUNCATE`` on PostgreSQL) on the table.

Rows are read back in storage order (``seq``), which is what ``sona events export`` and any
incremental consumer page through.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from sona.db import make_engine

_metadata = MetaData()

#: the log table; ``seq`` is the storage order, ``event_id`` the client's idempotency key
EVENT_LOG = Table(
    "event_log", _metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("event_type", String(32), nullable=False),
    Column("content_id", String(128), nullable=True),
    Column("timestamp", Float, nullable=False),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("device_id", String(64), nullable=True),
    Column("region", String(8), nullable=True),
    Column("received_at", Float, nullable=False),
)

_SQLITE_GUARDS = [
    "CREATE TRIGGER IF NOT EXISTS event_log_no_update BEFORE UPDATE ON event_log "
    "BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS event_log_no_delete BEFORE DELETE ON event_log "
    "BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END",
]
_POSTGRES_GUARDS = [
    "CREATE OR REPLACE FUNCTION event_log_append_only() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'event_log is append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE OR REPLACE TRIGGER event_log_no_change BEFORE UPDATE OR DELETE ON event_log "
    "FOR EACH ROW EXECUTE FUNCTION event_log_append_only()",
    "CREATE OR REPLACE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_log_append_only()",
]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One user-activity event (SPEC §5 fields); ``timestamp`` in Unix seconds."""

    event_id: str
    user_id: str
    event_type: str
    timestamp: float
    content_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    device_id: str | None = None
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the wire names)."""
        return {"event_id": self.event_id, "user_id": self.user_id,
                "event_type": self.event_type, "content_id": self.content_id,
                "timestamp": self.timestamp, "metadata": self.metadata,
                "device_id": self.device_id, "region": self.region}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its storage position and arrival time added."""

    seq: int
    event: LogEvent
    received_at: float  # Unix seconds

    def to_dict(self) -> dict[str, Any]:
        """The event's JSON form plus ``seq`` and ``received_at``."""
        return {"seq": self.seq, **self.event.to_dict(), "received_at": self.received_at}


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of one :meth:`EventLog.append`: every listed id is committed."""

    stored: list[str]  # ids new to the log, in request order
    duplicates: list[str]  # ids the log already held (or repeated within the batch)


def _row(ev: LogEvent, now: float) -> dict[str, Any]:
    return {"event_id": ev.event_id, "user_id": ev.user_id, "event_type": ev.event_type,
            "content_id": ev.content_id, "timestamp": float(ev.timestamp),
            "metadata": json.dumps(ev.metadata, separators=(",", ":"), sort_keys=True),
            "device_id": ev.device_id, "region": ev.region, "received_at": now}


def _stored(row: Any) -> StoredEvent:
    m = row._mapping
    return StoredEvent(int(m["seq"]), LogEvent(
        m["event_id"], m["user_id"], m["event_type"], float(m["timestamp"]), m["content_id"],
        json.loads(m["metadata"]), m["device_id"], m["region"]), float(m["received_at"]))


class EventLog:
    """The event log in any SQLAlchemy database (SQLite file by default, PostgreSQL by URL).

    Args:
        url: SQLAlchemy URL (``sqlite:////abs/events.db``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, durable=True)
        _metadata.create_all(self.engine)
        guards = {"sqlite": _SQLITE_GUARDS, "postgresql": _POSTGRES_GUARDS}.get(
            self.engine.dialect.name, [])
        with self.engine.begin() as conn:
            for statement in guards:
                conn.execute(text(statement))

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def append(self, events: Sequence[LogEvent]) -> AppendResult:
        """Store ``events`` in one transaction; ids already stored are skipped.

        Returns once the transaction has committed (durably: see the module docstring).

        Returns:
            the new ids and the duplicate ids, each in request order.
        """
        seen: set[str] = set()
        batch: list[LogEvent] = []
        repeated: list[str] = []
        for ev in events:
            if ev.event_id in seen:
                repeated.append(ev.event_id)
            else:
                seen.add(ev.event_id)
                batch.append(ev)
        if not batch:
            return AppendResult([], [e.event_id for e in events])
        now = time.time()
        rows = [_row(ev, now) for ev in batch]
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if dialect in ("sqlite", "postgresql"):
                insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(EVENT_LOG)
                statement = insert.on_conflict_do_nothing(index_elements=["event_id"])
                new = set(conn.execute(statement.returning(EVENT_LOG.c.event_id),
                                       rows).scalars())
            else:  # portable path: look up, then insert what is missing
                ids = [r["event_id"] for r in rows]
                known = set(conn.execute(select(EVENT_LOG.c.event_id).where(
                    EVENT_LOG.c.event_id.in_(ids))).scalars())
                fresh = [r for r in rows if r["event_id"] not in known]
                if fresh:
                    conn.execute(EVENT_LOG.insert(), fresh)
                new = {r["event_id"] for r in fresh}
        stored = [ev.event_id for ev in batch if ev.event_id in new]
        duplicates = [ev.event_id for ev in batch if ev.event_id not in new] + repeated
        return AppendResult(stored, duplicates)

    def read(self, *, after_seq: int = 0, limit: int = 1000, user_id: str | None = None,
             event_types: Sequence[str] | None = None) -> list[StoredEvent]:
        """Events with ``seq > after_seq`` in storage order, at most ``limit``.

        Args:
            after_seq: a cursor: the ``seq`` of the last event already read.
            limit: page size.
            user_id: only this user's events.
            event_types: only these types.
        """
        query = select(EVENT_LOG).where(EVENT_LOG.c.seq > after_seq)
        if user_id is not None:
            query = query.where(EVENT_LOG.c.user_id == user_id)
        if event_types:
            query = query.where(EVENT_LOG.c.event_type.in_(list(event_types)))
        query = query.order_by(EVENT_LOG.c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [_stored(r) for r in conn.execute(query)]

    def latest(self, user_id: str, *, limit: int = 100) -> list[StoredEvent]:
        """The user's most recent ``limit`` events, newest first."""
        query = select(EVENT_LOG).where(EVENT_LOG.c.user_id == user_id) \
            .order_by(EVENT_LOG.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_stored(r) for r in conn.execute(query)]

    def scan(self, *, batch_size: int = 5000) -> Iterator[StoredEvent]:
        """Every event in storage order, read page by page (constant memory)."""
        cursor = 0
        while True:
            page = self.read(after_seq=cursor, limit=batch_size)
            yield from page
            if len(page) < batch_size:
                return
            cursor = page[-1].seq

    def count(self, *, user_id: str | None = None) -> int:
        """Stored events (of one user, or all)."""
        query = select(func.count()).select_from(EVENT_LOG)
        if user_id is not None:
            query = query.where(EVENT_LOG.c.user_id == user_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def ids(self) -> set[str]:
        """Every stored event id (for audits and the durability test)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(EVENT_LOG.c.event_id)).scalars())


__all__ = ["EVENT_LOG", "AppendResult", "EventLog", "LogEvent", "StoredEvent"]
