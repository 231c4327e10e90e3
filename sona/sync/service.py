"""The sync service: devices per user, push, pull-since-clock, fan-out and signals.

Plain Python over :class:`~sona.sync.store.SyncStore` (no HTTP here: the routes are in
``sona/serving/sync_http.py``). A push is validated (registered, active device; every stamp
made by that device and at most ``max_drift_s`` ahead of the server clock), stamped with the
server's HLC, stored in one durable transaction and only then acknowledged. After the commit
the new operations go to the user's other connected devices (:meth:`SyncService.subscribe`,
the WebSocket channel) and, as viewing events, to the signal sink (the recommender).

Stamping and storing happen under one lock, so operations are committed in ``server_ts``
order and a puller never skips one that commits later with a smaller stamp (one process:
the BentoML service runs one worker).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sona.errors import RequestError
from sona.sync.clock import ClockError, HybridLogicalClock, Timestamp, wall_ms
from sona.sync.document import Operation, OpKind, SyncDocument
from sona.sync.signals import SignalConfig, SignalSink, viewing_events
from sona.sync.store import Device, StoredOperation, SyncStore

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]
"""Receives ``{"type": "ops", "ops": [...], "clock": ...}`` or ``{"type": "revoked"}``."""


class SyncError(RequestError):
    """A sync request that cannot be served: HTTP ``status``, ``code`` and the bad ``fields``."""


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Settings of the sync service (the ``sync`` block of the serving YAML)."""

    # SQLAlchemy URL; None: sync.db next to the serving database
    url: str | None = None
    # stamps further ahead of the server clock are rejected (seconds)
    max_drift_s: float = 60.0
    # users whose materialised document stays in memory
    cached_users: int = 10_000
    # how operations become viewing events
    signals: SignalConfig = field(default_factory=SignalConfig)


@dataclass(frozen=True, slots=True)
class PushResult:
    """Acknowledgement of a push: every op id listed here is stored durably."""

    accepted: list[str]  # new operations
    duplicates: list[str]  # stored before (a replayed queue)
    clock: str  # the server stamp of the last stored operation
    signals: int  # viewing events handed to the recommender

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "clock": self.clock, "signals": self.signals}


@dataclass(frozen=True, slots=True)
class PullResult:
    """Operations after a cursor, the new cursor and whether more are waiting."""

    ops: list[StoredOperation]
    clock: str | None
    more: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ops": [o.to_dict() for o in self.ops], "clock": self.clock, "more": self.more}


class SyncService:
    """Devices, operations and the fan-out of one user's edits to their other devices.

    Args:
        store: persistence.
        config: settings.
        signals: receives viewing events from new watchlist adds and progress.
        physical: wall clock in milliseconds (tests inject one).
    """

    def __init__(self, store: SyncStore, config: SyncConfig = SyncConfig(), *,
                 signals: SignalSink | None = None,
                 physical: Callable[[], int] = wall_ms) -> None:
        self.store = store
        self.config = config
        self.signals = signals
        self.physical = physical
        latest = store.latest_server_ts()
        self.clock = HybridLogicalClock(
            "server", physical=physical, max_drift_ms=int(config.max_drift_s * 1000),
            last=Timestamp.parse(latest) if latest else None)
        self._lock = threading.Lock()
        self._docs: OrderedDict[str, SyncDocument] = OrderedDict()
        self._device_clocks: dict[str, HybridLogicalClock] = {}
        self._listeners: dict[str, dict[int, tuple[str, Listener]]] = {}
        self._listener_ids = 0
        self._listeners_lock = threading.Lock()

    # --- devices ---------------------------------------------------------------------------

    def register_device(self, user_id: str, device_id: str | None = None, *, name: str = "",
                        device_type: str = "mobile") -> Device:
        """Register (or re-activate) a device; a new id is generated when none is given."""
        device_id = device_id or f"dev-{secrets.token_hex(6)}"
        current = self.store.device(user_id, device_id)
        registered = current.registered_at if current is not None else time.time()
        return self.store.put_device(Device(user_id, device_id, name or device_id, device_type,
                                            registered, None, time.time()))

    def devices(self, user_id: str) -> list[Device]:
        """The user's devices (revoked ones included, marked inactive)."""
        return self.store.devices(user_id)

    def revoke_device(self, user_id: str, device_id: str) -> Device:
        """Revoke a device: its pushes, pulls and channel are refused from now on.

        Raises:
            SyncError: 404 for an unknown device.
        """
        device = self._device(user_id, device_id, active=False)
        revoked = self.store.put_device(Device(
            device.user_id, device.device_id, device.name, device.device_type,
            device.registered_at, time.time(), device.last_seen_at))
        self._notify(user_id, None, {"type": "revoked", "device_id": device_id},
                     only=device_id)
        return revoked

    def _device(self, user_id: str, device_id: str, *, active: bool = True) -> Device:
        device = self.store.device(user_id, device_id)
        if device is None:
            raise SyncError(404, "unknown_device", f"device {device_id!r} is not registered "
                            f"for user {user_id!r}", ["device_id"])
        if active and not device.active:
            raise SyncError(403, "device_revoked", f"device {device_id!r} of user "
                            f"{user_id!r} was revoked", ["device_id"])
        return device

    def check_device(self, user_id: str, device_id: str) -> Device:
        """The active device, or :class:`SyncError` 404 (unknown) / 403 (revoked)."""
        return self._device(user_id, device_id)

    # --- operations ------------------------------------------------------------------------

    def document(self, user_id: str) -> SyncDocument:
        """The user's current state (all stored operations merged)."""
        with self._lock:
            return self._doc(user_id)

    def _doc(self, user_id: str) -> SyncDocument:
        doc = self._docs.get(user_id)
        if doc is None:
            doc = SyncDocument().apply_all(self.store.operations(user_id))
        self._docs[user_id] = doc
        self._docs.move_to_end(user_id)
        while len(self._docs) > self.config.cached_users:
            self._docs.popitem(last=False)
        return doc

    def _validate(self, device_id: str, ops: Sequence[Operation]) -> None:
        for i, op in enumerate(ops):
            if op.device_id != device_id or op.ts.node != device_id:
                raise SyncError(400, "validation_error", f"ops.{i}: operation of device "
                                f"{op.device_id!r} (stamp node {op.ts.node!r}) pushed by "
                                f"{device_id!r}", [f"ops.{i}.device_id"])
            try:
                self.clock.check(op.ts)
            except ClockError as exc:
                raise SyncError(400, "clock_drift", f"ops.{i}.ts: {exc}",
                                [f"ops.{i}.ts"]) from None

    def push(self, user_id: str, device_id: str, ops: Sequence[Operation]) -> PushResult:
        """Store a device's operations; the answer lists what is now durable.

        Raises:
            SyncError: unknown (404) or revoked (403) device, an operation of another
                device or a stamp too far ahead (400).
        """
        self._device(user_id, device_id)
        self._validate(device_id, ops)
        with self._lock:
            before = self._doc(user_id)  # read before the insert: it loads from the store
            stamped = []
            for op in ops:
                self.clock.observe(op.ts)
                stamped.append((op, self.clock.now().encode()))
            pending = set(self.store.insert(user_id, stamped))
            fresh, duplicates = [], []
            for op, server_ts in stamped:  # the first copy of an id is the stored one
                if op.op_id in pending:
                    pending.discard(op.op_id)
                    fresh.append((op, server_ts))
                else:
                    duplicates.append(op.op_id)
            self._docs[user_id] = before.apply_all(op for op, _ in fresh)
            events = viewing_events(before, [op for op, _ in fresh], self.config.signals)
        self.store.touch_device(user_id, device_id, time.time())
        clock = stamped[-1][1] if stamped else ""
        if fresh:
            self._notify(user_id, device_id, {
                "type": "ops", "ops": [StoredOperation(op, s).to_dict() for op, s in fresh],
                "clock": fresh[-1][1]})
        if events and self.signals is not None:
            try:
                self.signals(user_id, events)
            except Exception:  # the edit is stored; a recommender failure must not undo that
                log.exception("sync signals of user %s were not recorded", user_id)
                events = []
        return PushResult([op.op_id for op, _ in fresh], duplicates, clock, len(events))

    def pull(self, user_id: str, device_id: str, since: str | None = None,
             limit: int = 500) -> PullResult:
        """Operations stored after the cursor ``since`` (a ``server_ts``), oldest first."""
        self._device(user_id, device_id)
        found = self.store.since(user_id, since, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        self.store.touch_device(user_id, device_id, time.time())
        return PullResult(found, found[-1].server_ts if found else since, more)

    def edit(self, user_id: str, device_id: str, kind: OpKind, key: str, value: Any = None,
             *, device_name: str = "", device_type: str = "assistant") -> PushResult:
        """Make and push one edit on behalf of a server-side device (e.g. the MCP assistant).

        The device is registered on first use; its HLC continues from its latest stored
        stamp, so its edits order after everything it made before a restart. A remove names
        the add tags the server has observed for ``key``.

        Raises:
            SyncError: 404 when removing a title that is not on the watchlist, 403 when the
                device was revoked.
        """
        current = self.store.device(user_id, device_id)
        if current is None:
            self.register_device(user_id, device_id, name=device_name,
                                 device_type=device_type)
        clock = self._device_clocks.get(device_id)
        if clock is None:
            latest = self.store.latest_ts(device_id)
            clock = HybridLogicalClock(device_id, physical=self.physical,
                                       last=Timestamp.parse(latest) if latest else None)
            self._device_clocks[device_id] = clock
        tags: tuple[str, ...] = ()
        if kind == "watchlist_remove":
            tags = tuple(sorted(self.document(user_id).watchlist.observed(key)))
            if not tags:
                raise SyncError(404, "not_found", f"content {key!r} is not on the watchlist of "
                                f"user {user_id!r}", ["content_id"])
        ts = clock.now()
        op = Operation(ts.encode(), device_id, ts, kind, key, value, tags)
        return self.push(user_id, device_id, [op])

    # --- fan-out ---------------------------------------------------------------------------

    def subscribe(self, user_id: str, device_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every later push of the user's *other* devices.

        Returns:
            a function that unsubscribes.
        """
        with self._listeners_lock:
            self._listener_ids += 1
            token = self._listener_ids
            self._listeners.setdefault(user_id, {})[token] = (device_id, listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                self._listeners.get(user_id, {}).pop(token, None)

        return unsubscribe

    def _notify(self, user_id: str, from_device: str | None, message: dict[str, Any], *,
                only: str | None = None) -> None:
        with self._listeners_lock:
            targets = list(self._listeners.get(user_id, {}).values())
        for device_id, listener in targets:
            if device_id == from_device or (only is not None and device_id != only):
                continue
            try:
                listener(message)
            except Exception:  # one broken connection must not stop the others
                log.exception("sync listener of %s/%s failed", user_id, device_id)


__all__ = ["Listener", "PullResult", "PushResult", "SyncConfig", "SyncError", "SyncService"]
