"""Audit log (SPEC §5): who did what to which resource, when and why.

Rows follow the original schema ``{id, timestamp, user_id?, action, resource_type,
resource_id?, details JSON, ip, user_agent}``; SONA records model promotions, model
reloads and API key creation/revocation here. :meth:`AuditLog.query` filters by user,
action and time range (the original's filter query was broken).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine


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
              resource_type: str | None = None, since: float | None = None,
              until: float | None = None, limit: int = 100) -> list[AuditRecord]:
        """Records matching every given filter, newest first (``since <= t < until``)."""
        q = select(_AuditRow)
        if user_id is not None:
            q = q.where(_AuditRow.user_id == user_id)
        if action is not None:
            q = q.where(_AuditRow.action == action)
        if resource_type is not None:
            q = q.where(_AuditRow.resource_type == resource_type)
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


__all__ = ["AuditLog", "AuditRecord"]
