"""A user's replicated sync state and the operations that change it.

:class:`SyncDocument` holds the three CRDTs of SPEC §5's sync service: the watchlist
(:class:`~sona.sync.orset.ORSet` of content ids), playback progress per content id and
settings per key (both :class:`~sona.sync.lww.LWWRegister`). Devices never send state, only
:class:`Operation` records; applying an operation is a merge with a one-operation state, so
every device and the server reach the same document from the same set of operations,
whatever order they arrive in and however often (tests/sync/test_crdt_properties.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sona.sync.clock import Timestamp
from sona.sync.lww import LWWRegister, merge_lww
from sona.sync.orset import ORSet

OpKind = Literal["watchlist_add", "watchlist_remove", "progress", "setting"]
OP_KINDS: tuple[str, ...] = get_args(OpKind)


@dataclass(frozen=True, slots=True)
class Operation:
    """One edit made on one device.

    Attributes:
        op_id: unique per user (clients use the stamp's text form, which embeds the device).
        device_id: the device that made the edit (equals ``ts.node``).
        ts: HLC stamp of the edit.
        kind: what it changes.
        key: content id (watchlist, progress) or setting name.
        value: progress ``{"position_s", "duration_s"}``, a setting's JSON value, else None.
        tags: for ``watchlist_remove``: the add tags the device had observed.
    """

    op_id: str
    device_id: str
    ts: Timestamp
    kind: OpKind
    key: str
    value: Any = None
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The wire form (``ts`` as its sortable text)."""
        return {"op_id": self.op_id, "device_id": self.device_id, "ts": self.ts.encode(),
                "kind": self.kind, "key": self.key, "value": self.value,
                "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Operation:
        """Inverse of :meth:`to_dict` (values are trusted: validate wire input first)."""
        return cls(str(data["op_id"]), str(data["device_id"]), Timestamp.parse(data["ts"]),
                   data["kind"], str(data["key"]), data.get("value"),
                   tuple(data.get("tags") or ()))


@dataclass(frozen=True)
class SyncDocument:
    """Watchlist, progress and settings of one user (immutable; methods return new ones)."""

    watchlist: ORSet = field(default_factory=ORSet)
    progress: Mapping[str, LWWRegister] = field(default_factory=dict)
    settings: Mapping[str, LWWRegister] = field(default_factory=dict)

    def apply(self, op: Operation) -> SyncDocument:
        """The document after ``op`` (idempotent: applying it twice changes nothing more)."""
        if op.kind == "watchlist_add":
            return SyncDocument(self.watchlist.add(op.key, op.op_id), self.progress,
                                self.settings)
        if op.kind == "watchlist_remove":
            return SyncDocument(self.watchlist.remove(op.tags), self.progress, self.settings)
        register = LWWRegister(op.value, op.ts)
        if op.kind == "progress":
            return SyncDocument(self.watchlist, _put(self.progress, op.key, register),
                                self.settings)
        if op.kind == "setting":
            return SyncDocument(self.watchlist, self.progress,
                                _put(self.settings, op.key, register))
        raise ValueError(f"unknown operation kind {op.kind!r}; expected one of {OP_KINDS}")

    def apply_all(self, ops: Iterable[Operation]) -> SyncDocument:
        """Apply every operation in turn."""
        doc = self
        for op in ops:
            doc = doc.apply(op)
        return doc

    def merge(self, other: SyncDocument) -> SyncDocument:
        """The join of two replicas' states."""
        return SyncDocument(self.watchlist.merge(other.watchlist),
                            _merge_maps(self.progress, other.progress),
                            _merge_maps(self.settings, other.settings))

    def to_dict(self) -> dict[str, Any]:
        """What a user sees: watchlist ids, progress and settings with their stamps."""
        return {
            "watchlist": self.watchlist.elements(),
            "progress": {k: {**dict(r.value), "updated": r.ts.encode()}
                         for k, r in sorted(self.progress.items())},
            "settings": {k: {"value": r.value, "updated": r.ts.encode()}
                         for k, r in sorted(self.settings.items())},
        }


def _put(registers: Mapping[str, LWWRegister], key: str,
         register: LWWRegister) -> dict[str, LWWRegister]:
    out = dict(registers)
    merged = merge_lww(out.get(key), register)
    assert merged is not None  # register is not None
    out[key] = merged
    return out


def _merge_maps(a: Mapping[str, LWWRegister],
                b: Mapping[str, LWWRegister]) -> dict[str, LWWRegister]:
    out = dict(a)
    for key, register in b.items():
        merged = merge_lww(out.get(key), register)
        assert merged is not None
        out[key] = merged
    return out


def completion(value: Mapping[str, Any]) -> float:
    """``position_s / duration_s`` of a progress value, clamped to [0, 1]."""
    duration = float(value["duration_s"])
    return 0.0 if duration <= 0 else min(1.0, max(0.0, float(value["position_s"]) / duration))


__all__ = ["OP_KINDS", "OpKind", "Operation", "SyncDocument", "completion"]
