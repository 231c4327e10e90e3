"""Audit log (SPEC §5): who did what to which resource, when and why.

Rows follow the original schema ``{id, timestamp, user_id?, action, resource_type,
resource_id?, details JSON, ip, user_agent}``; SONA records model promotions, model
reloads and API key creation/revocation here. :meth:`AuditLog.query` filters by user,
action and time range (the original's filter query was broken).

The catalog keeps the audit rows of content changes in its own database, written in the
same transaction as the change (:meth:`sona.catalog.store.CatalogStore.audit_log`).
:func:`query_audit` is the one query over both logs: ``GET /api/v1/admin/audit`` and
``sona audit`` call it with an :class:`AuditFilter` and get :class:`AuditEntry` rows,
newest first, each naming the log it came from.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.wire import QueryTimestamp

if TYPE_CHECKING:
    from sona.catalog.store import CatalogStore


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit row."""

    id: int
    timestamp: float
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    user_id: str | None
    ip: str | None
    user_agent: str | None


class _Base(DeclarativeBase):
    pass


class _AuditRow(_Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[float] = mapped_column(Float, index=True)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    details: Mapped[str] = mapped_column(Text, default="{}")
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)


class AuditLog:
    """Append-only audit records in a relational store.

    Args:
        url: SQLAlchemy URL.
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def record(self, action: str, resource_type: str, resource_id: str | None = None, *,
               details: dict[str, Any] | None = None, user_id: str | None = None,
               ip: str | None = None, user_agent: str | None = None) -> AuditRecord:
        """Append one record (timestamped now)."""
        with Session(self.engine) as session, session.begin():
            row = _AuditRow(timestamp=time.time(), user_id=user_id, action=action,
                            resource_type=resource_type, resource_id=resource_id,
                            details=json.dumps(details or {}, default=str), ip=ip,
                            user_agent=user_agent)
            session.add(row)
            session.flush()
            return _record(row)

    def query(self, *, user_id: str | None = None, action: str | None = None,
              resource_type: str | None = None, resource_id: str | None = None,
              since: float | None = None, until: float | None = None,
              limit: int = 100) -> list[AuditRecord]:
        """Records matching every given filter, newest first (``since <= t < until``)."""
        q = select(_AuditRow)
        if user_id is not None:
            q = q.where(_AuditRow.user_id == user_id)
        if action is not None:
            q = q.where(_AuditRow.action == action)
        if resource_type is not None:
            q = q.where(_AuditRow.resource_type == resource_type)
        if resource_id is not None:
            q = q.where(_AuditRow.resource_id == resource_id)
        if since is not None:
            q = q.where(_AuditRow.timestamp >= since)
        if until is not None:
            q = q.where(_AuditRow.timestamp < until)
        with Session(self.engine) as session:
            rows = session.scalars(q.order_by(_AuditRow.id.desc()).limit(limit))
            return [_record(r) for r in rows]


def _record(row: _AuditRow) -> AuditRecord:
    return AuditRecord(row.id, row.timestamp, row.action, row.resource_type, row.resource_id,
                       json.loads(row.details), row.user_id, row.ip, row.user_agent)


class AuditFilter(BaseModel):
    """Filters of an audit query (``GET /api/v1/admin/audit`` query, ``sona audit`` options).

    Times are ISO-8601 (a time without zone is UTC) or Unix seconds; ``since <= t < until``,
    so ``until`` at or before ``since`` is an empty window: no rows, not an error.
    """

    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(None, max_length=128,
                              description="who acted: a user id or `key:<api key id>`")
    action: str | None = Field(None, max_length=64, description="e.g. `content_updated`")
    resource_type: str | None = Field(None, max_length=64, description="e.g. `content`")
    resource_id: str | None = Field(None, max_length=256)
    since: QueryTimestamp | None = Field(None, description="earliest time, inclusive")
    until: QueryTimestamp | None = Field(None, description="latest time, exclusive")
    limit: int = Field(100, ge=1, le=1000, description="most rows returned")


class AuditEntry(BaseModel):
    """One audit row of either log."""

    log: Literal["serving", "catalog"] = Field(description="the log the row lives in")
    id: str
    timestamp: datetime
    actor: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None


class AuditResponse(BaseModel):
    """``GET /api/v1/admin/audit`` reply: matching rows, newest first."""

    entries: list[AuditEntry]
    count: int


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def query_audit(serving: AuditLog, catalog: CatalogStore | None,
                query: AuditFilter) -> list[AuditEntry]:
    """Rows of both audit logs matching ``query``, newest first, at most ``query.limit``.

    Each log is asked for its newest ``limit`` matches; the merge keeps the newest overall.
    """
    since = _utc(query.since) if query.since is not None else None
    until = _utc(query.until) if query.until is not None else None
    rows = [AuditEntry(log="serving", id=str(r.id),
                       timestamp=datetime.fromtimestamp(r.timestamp, UTC), actor=r.user_id,
                       action=r.action, resource_type=r.resource_type,
                       resource_id=r.resource_id, details=r.details, ip=r.ip,
                       user_agent=r.user_agent)
            for r in serving.query(user_id=query.actor, action=query.action,
                                   resource_type=query.resource_type,
                                   resource_id=query.resource_id,
                                   since=since.timestamp() if since else None,
                                   until=until.timestamp() if until else None,
                                   limit=query.limit)]
    if catalog is not None:
        rows += [AuditEntry(log="catalog", id=r.id, timestamp=_utc(r.timestamp),
                            actor=r.user_id, action=r.action, resource_type=r.resource_type,
                            resource_id=r.resource_id, details=r.details, ip=r.ip,
                            user_agent=r.user_agent)
                 for r in catalog.audit_log(user_id=query.actor, action=query.action,
                                            resource_type=query.resource_type,
                                            resource_id=query.resource_id, since=since,
                                            until=until, limit=query.limit)]
    rows.sort(key=lambda e: e.timestamp, reverse=True)
    return rows[:query.limit]


__all__ = ["AuditEntry", "AuditFilter", "AuditLog", "AuditRecord", "AuditResponse",
           "query_audit"]
