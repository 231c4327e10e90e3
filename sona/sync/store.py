"""Persistence of the sync service: devices and operations (SQLAlchemy).

Engines come from :func:`sona.db.make_engine` (the one engine factory) with ``durable=True``:
on SQLite an acknowledged push is on disk (``synchronous=FULL``) before the HTTP answer
leaves, so neither ``kill -9`` nor a power cut loses it; PostgreSQL commits are durable by
default. Operations are unique per ``(user_id, op_id)``, so a device that replays its
offline queue after a lost acknowledgement stores nothing twice.

Each operation also records ``server_ts``, the server's HLC stamp when it was stored
(strictly increasing, in storage order): "pull since clock" reads the operations with
``server_ts`` greater than the device's cursor, so an operation made offline long ago but
pushed late is still delivered to devices that synced in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.sync.clock import Timestamp
from sona.sync.document import Operation


class _Base(DeclarativeBase):
    pass


class _DeviceRow(_Base):
    __tablename__ = "sync_devices"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    device_type: Mapped[str] = mapped_column(String(32))
    registered_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class _OperationRow(_Base):
    __tablename__ = "sync_operations"
    __table_args__ = (UniqueConstraint("user_id", "op_id", name="uq_sync_user_op"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    op_id: Mapped[str] = mapped_column(String(160))
    device_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(96))
    server_ts: Mapped[str] = mapped_column(String(96), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="null")
    tags: Mapped[str] = mapped_column(Text, default="[]")
    received_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device of a user."""

    user_id: str
    device_id: str
    name: str
    device_type: str
    registered_at: float  # Unix seconds
    revoked_at: float | None = None
    last_seen_at: float | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"user_id": self.user_id, "device_id": self.device_id, "name": self.name,
                "device_type": self.device_type, "registered_at": self.registered_at,
                "revoked_at": self.revoked_at, "last_seen_at": self.last_seen_at,
                "active": self.active}


@dataclass(frozen=True, slots=True)
class StoredOperation:
    """An operation as stored, with the server's stamp."""

    op: Operation
    server_ts: str

    def to_dict(self) -> dict[str, Any]:
        """The operation's wire form plus ``server_ts``."""
        return {**self.op.to_dict(), "server_ts": self.server_ts}


def _device(row: _DeviceRow) -> Device:
    return Device(row.user_id, row.device_id, row.name, row.device_type, row.registered_at,
                  row.revoked_at, row.last_seen_at)


def _operation(row: _OperationRow) -> StoredOperation:
    op = Operation(row.op_id, row.device_id, Timestamp.parse(row.ts), row.kind,  # type: ignore[arg-type]
                   row.key, json.loads(row.value), tuple(json.loads(row.tags)))
    return StoredOperation(op, row.server_ts)


class SyncStore:
    """Devices and operations in any SQLAlchemy database.

    Args:
        url: SQLAlchemy URL (``sqlite:////abs/sync.db``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url, durable=True)
        _Base.metadata.create_all(self.engine)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # --- devices ---------------------------------------------------------------------------

    def put_device(self, device: Device) -> Device:
        """Insert or update (re-registering a revoked device activates it again)."""
        with Session(self.engine) as session, session.begin():
            session.merge(_DeviceRow(
                user_id=device.user_id, device_id=device.device_id, name=device.name,
                device_type=device.device_type, registered_at=device.registered_at,
                revoked_at=device.revoked_at, last_seen_at=device.last_seen_at))
        return device

    def device(self, user_id: str, device_id: str) -> Device | None:
        """One device, or None."""
        with Session(self.engine) as session:
            row = session.get(_DeviceRow, (user_id, device_id))
            return None if row is None else _device(row)

    def devices(self, user_id: str) -> list[Device]:
        """The user's devices, oldest registration first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(_DeviceRow).where(_DeviceRow.user_id == user_id)
                                   .order_by(_DeviceRow.registered_at, _DeviceRow.device_id))
            return [_device(r) for r in rows]

    def touch_device(self, user_id: str, device_id: str, when: float) -> None:
        """Record that the device was seen."""
        with Session(self.engine) as session, session.begin():
            row = session.get(_DeviceRow, (user_id, device_id))
            if row is not None:
                row.last_seen_at = when

    # --- operations ------------------------------------------------------------------------

    def insert(self, user_id: str, ops: Sequence[tuple[Operation, str]]) -> list[str]:
        """Store ``(operation, server_ts)`` pairs in one transaction; skip known op ids.

        Returns:
            op ids that were new (the others were stored before: duplicates).
        """
        if not ops:
            return []
        now = time.time()
        ids = [op.op_id for op, _ in ops]
        with Session(self.engine) as session, session.begin():
            known = set(session.scalars(select(_OperationRow.op_id).where(
                _OperationRow.user_id == user_id, _OperationRow.op_id.in_(ids))))
            fresh: list[str] = []
            for op, server_ts in ops:
                if op.op_id in known:
                    continue
                known.add(op.op_id)
                fresh.append(op.op_id)
                session.add(_OperationRow(
                    user_id=user_id, op_id=op.op_id, device_id=op.device_id,
                    ts=op.ts.encode(), server_ts=server_ts, kind=op.kind, key=op.key,
                    value=json.dumps(op.value), tags=json.dumps(list(op.tags)),
                    received_at=now))
        return fresh

    def since(self, user_id: str, since: str | None, limit: int) -> list[StoredOperation]:
        """The user's operations with ``server_ts > since``, in server order, at most ``limit``."""
        query = select(_OperationRow).where(_OperationRow.user_id == user_id)
        if since:
            query = query.where(_OperationRow.server_ts > since)
        query = query.order_by(_OperationRow.server_ts).limit(limit)
        with Session(self.engine) as session:
            return [_operation(r) for r in session.scalars(query)]

    def between(self, user_id: str, first: str, last: str) -> list[StoredOperation]:
        """The user's operations with ``first <= server_ts <= last``, in server order (one
        push's operations, re-read by the workers that relay it to their listeners)."""
        query = (select(_OperationRow).where(
            _OperationRow.user_id == user_id, _OperationRow.server_ts >= first,
            _OperationRow.server_ts <= last).order_by(_OperationRow.server_ts))
        with Session(self.engine) as session:
            return [_operation(r) for r in session.scalars(query)]

    def operations(self, user_id: str) -> list[Operation]:
        """Every operation of the user, in server order."""
        with Session(self.engine) as session:
            rows = session.scalars(select(_OperationRow).where(
                _OperationRow.user_id == user_id).order_by(_OperationRow.server_ts))
            return [_operation(r).op for r in rows]

    def count(self, user_id: str | None = None) -> int:
        """Stored operations (of one user, or all)."""
        query = select(func.count()).select_from(_OperationRow)
        if user_id is not None:
            query = query.where(_OperationRow.user_id == user_id)
        with Session(self.engine) as session:
            return int(session.scalar(query) or 0)

    def op_ids(self, user_id: str) -> set[str]:
        """Ids of the user's stored operations."""
        with Session(self.engine) as session:
            return set(session.scalars(select(_OperationRow.op_id).where(
                _OperationRow.user_id == user_id)))

    def latest_server_ts(self) -> str | None:
        """The greatest server stamp stored (restores the server clock after a restart)."""
        with Session(self.engine) as session:
            return session.scalar(select(func.max(_OperationRow.server_ts)))

    def latest_ts(self, device_id: str, *, user_id: str | None = None) -> str | None:
        """The greatest stamp of operations made by ``device_id``, of one user (an index
        lookup of the user's operations) or of any user (a scan of every operation)."""
        query = select(func.max(_OperationRow.ts)).where(_OperationRow.device_id == device_id)
        if user_id is not None:
            query = query.where(_OperationRow.user_id == user_id)
        with Session(self.engine) as session:
            return session.scalar(query)


__all__ = ["Device", "StoredOperation", "SyncStore"]
