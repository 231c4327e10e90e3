"""The sync service: devices per user, push, pull-since-clock, fan-out and signals.

Plain Python over :class:`~sona.sync.store.SyncStore` (no HTTP here: the routes are in
``sona/serving/sync_http.py``). A push is validated (registered, active device; every stamp
made by that device and at most ``max_drift_s`` ahead of the server clock), stamped with the
server's HLC, stored in one durable transaction and only then acknowledged. After the commit
the new operations go to the user's other connected devices (:meth:`SyncService.subscribe`,
the WebSocket channel) and, as viewing events, to the signal sink (the recommender).

Stamping and storing happen under one lock, so operations are committed in ``server_ts``
order and a puller never skips one that commits later with a smaller stamp.

Several worker processes (BentoML ``workers``, issue 12) share one store and, through
:class:`~sona.shared.SharedState`, one lock, versions and a relay; the same code runs
with one worker. With ``shared``:

- the lock is ``shared.lock("sync")`` (around the thread lock), and inside it the server
  HLC first continues from the latest ``server_ts`` any worker committed, so stamps are
  strictly increasing in commit order across workers;
- a server-side device (:meth:`SyncService.edit`) continues from its latest stored stamp
  for that user inside the lock, so two workers never mint the same stamp (and op id);
- each push bumps the shared version ``("sync", user_id)`` after its commit; a cached
  materialised document is rebuilt when that version moved (no staleness window);
- each push and revocation is published on the relay topic ``"sync"`` after its commit
  (user, device and the pushed ``server_ts`` range, no rows); every other worker hands it to
  its own listeners through the same :meth:`SyncService._fan_out` as the pushing worker,
  re-reading the operations from the store. Devices are read from the store on every
  request, so a registration or revocation made by one worker holds in all of them at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sona.errors import RequestError
from sona.sync.clock import ClockError, HybridLogicalClock, Timestamp, wall_ms
from sona.sync.document import Operation, OpKind, SyncDocument
from sona.sync.signals import SignalConfig, SignalSink, viewing_events
from sona.sync.store import Device, StoredOperation, SyncStore

if TYPE_CHECKING:
    from sona.profile import ViewingEvent
    from sona.shared import SharedState

log = logging.getLogger(__name__)

#: shared-version domain of a user's stored operations (key: the user id), relay topic of
#: pushes and revocations, and name of the cross-worker stamp-then-commit lock
SYNC_DOMAIN = SYNC_TOPIC = SYNC_LOCK = "sync"

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

    Several instances over one store (one per worker process) behave as one service when
    each gets a :class:`~sona.shared.SharedState` over the same folder (see the
    module docstring); without ``shared`` the instance assumes it is the store's only writer.

    Args:
        store: persistence.
        config: settings.
        signals: receives viewing events from new watchlist adds and progress.
        physical: wall clock in milliseconds (tests inject one).
        shared: the lock, versions and relay shared with the server's other workers.
    """

    def __init__(self, store: SyncStore, config: SyncConfig = SyncConfig(), *,
                 signals: SignalSink | None = None,
                 physical: Callable[[], int] = wall_ms,
                 shared: SharedState | None = None) -> None:
        self.store = store
        self.config = config
        self.signals = signals
        self.physical = physical
        self.shared = shared
        latest = store.latest_server_ts()
        self.clock = HybridLogicalClock(
            "server", physical=physical, max_drift_ms=int(config.max_drift_s * 1000),
            last=Timestamp.parse(latest) if latest else None)
        self._lock = threading.Lock()
        # user -> (shared version of the user's operations when built, document)
        self._docs: OrderedDict[str, tuple[int, SyncDocument]] = OrderedDict()
        self._device_clocks: dict[str, HybridLogicalClock] = {}
        self._listeners: dict[str, dict[int, tuple[str, Listener]]] = {}
        self._listener_ids = 0
        self._listeners_lock = threading.Lock()
        if shared is not None:
            shared.subscribe(SYNC_TOPIC, self._fan_out)

    # --- devices ---------------------------------------------------------------------------

    def register_device(self, user_id: str, device_id: str | None = None, *, name: str = "",
                        device_type: str = "mobile") -> Device:
        """Register (or re-activate) a device; a new id is generated when none is given.

        Committed to the store: every worker accepts the device from its next request on.
        """
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

        Every worker refuses it from its next request on (devices are read from the store),
        and the device's channel is told ``{"type": "revoked"}`` and closed in whichever
        worker holds it (relayed after the commit).

        Raises:
            SyncError: 404 for an unknown device.
        """
        device = self._device(user_id, device_id, active=False)
        revoked = self.store.put_device(Device(
            device.user_id, device.device_id, device.name, device.device_type,
            device.registered_at, time.time(), device.last_seen_at))
        self._changed({"type": "revoked", "user_id": user_id, "device_id": device_id})
        return revoked

    def _device(self, user_id: str, device_id: str, *, active: bool = True) -> Device:
        device = self.store.device(user_id, device_id)  # no cache: other workers write too
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
        """The user's current state (all stored operations merged).

        Cached per user; the cached copy is rebuilt from the store once any worker stored
        operations of the user (shared version ``("sync", user_id)``), so a push answered by
        another worker is reflected as soon as it was acknowledged.
        """
        with self._lock:
            return self._doc(user_id)

    def _version(self, user_id: str) -> int:
        return self.shared.version(SYNC_DOMAIN, user_id) if self.shared is not None else 0

    def _doc(self, user_id: str) -> SyncDocument:
        version = self._version(user_id)  # read before the store: a later bump rebuilds
        hit = self._docs.get(user_id)
        if hit is not None and hit[0] == version:
            doc = hit[1]
        else:
            doc = SyncDocument().apply_all(self.store.operations(user_id))
        self._cache(user_id, version, doc)
        return doc

    def _cache(self, user_id: str, version: int, doc: SyncDocument) -> None:
        self._docs[user_id] = (version, doc)
        self._docs.move_to_end(user_id)
        while len(self._docs) > self.config.cached_users:
            self._docs.popitem(last=False)

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

    @contextmanager
    def _serial(self) -> Iterator[None]:
        """Stamp-then-commit: serial across this instance's threads and, with ``shared``,
        across every worker (the cross-process lock first, then the thread lock)."""
        outer: AbstractContextManager[None] = (
            self.shared.lock(SYNC_LOCK) if self.shared is not None else nullcontext())
        with outer, self._lock:
            yield

    def _commit(self, user_id: str, ops: Sequence[Operation]) -> _Committed:
        """Stamp and store ``ops``, then update the cached document (under :meth:`_serial`).

        The server clock first continues from the latest stamp in the store: another worker
        may have committed since this one last stamped, and a smaller stamp committed later
        would be skipped by a device pulling with a cursor past it.
        """
        latest = self.store.latest_server_ts()
        if latest is not None:
            self.clock.advance_to(Timestamp.parse(latest))
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
        version = self._version(user_id)
        if fresh and self.shared is not None:  # committed: the other workers' copies are old
            version = self.shared.bump(SYNC_DOMAIN, user_id)
        self._cache(user_id, version, before.apply_all(op for op, _ in fresh))
        events = viewing_events(before, [op for op, _ in fresh], self.config.signals)
        return _Committed(stamped, fresh, duplicates, events)

    def _acknowledge(self, user_id: str, device_id: str, done: _Committed) -> PushResult:
        """After the commit: fan-out (here and, relayed, in the other workers), signals."""
        self.store.touch_device(user_id, device_id, time.time())
        clock = done.stamped[-1][1] if done.stamped else ""
        if done.fresh:
            self._changed({"type": "ops", "user_id": user_id, "device_id": device_id,
                           "first": done.fresh[0][1], "last": done.fresh[-1][1]},
                          [StoredOperation(op, s) for op, s in done.fresh])
        events = done.events
        if events and self.signals is not None:
            try:
                self.signals(user_id, events)
            except Exception:  # the edit is stored; a recommender failure must not undo that
                log.exception("sync signals of user %s were not recorded", user_id)
                events = []
        return PushResult([op.op_id for op, _ in done.fresh], done.duplicates, clock,
                          len(events))

    def push(self, user_id: str, device_id: str, ops: Sequence[Operation]) -> PushResult:
        """Store a device's operations; the answer lists what is now durable.

        The user's other devices connected to any worker receive the new operations
        (:meth:`subscribe`); signals are recorded once, by the worker that stored them.

        Raises:
            SyncError: unknown (404) or revoked (403) device, an operation of another
                device or a stamp too far ahead (400).
        """
        self._device(user_id, device_id)
        self._validate(device_id, ops)
        with self._serial():
            done = self._commit(user_id, ops)
        return self._acknowledge(user_id, device_id, done)

    def pull(self, user_id: str, device_id: str, since: str | None = None,
             limit: int = 500) -> PullResult:
        """Operations stored after the cursor ``since`` (a ``server_ts``), oldest first.

        Any worker may answer any pull: stamps increase in commit order across workers.
        """
        self._device(user_id, device_id)
        found = self.store.since(user_id, since, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        self.store.touch_device(user_id, device_id, time.time())
        return PullResult(found, found[-1].server_ts if found else since, more)

    def _device_clock(self, user_id: str, device_id: str) -> HybridLogicalClock:
        """The HLC of a server-side device, past its latest stored stamp for ``user_id``
        (under :meth:`_serial`: another worker, or this one before a restart, may have
        made edits for this device; op ids are unique per user, so per user suffices)."""
        clock = self._device_clocks.get(device_id)
        if clock is None:
            clock = self._device_clocks[device_id] = HybridLogicalClock(
                device_id, physical=self.physical)
        latest = self.store.latest_ts(device_id, user_id=user_id)
        if latest is not None:
            clock.advance_to(Timestamp.parse(latest))
        return clock

    def edit(self, user_id: str, device_id: str, kind: OpKind, key: str, value: Any = None,
             *, device_name: str = "", device_type: str = "assistant") -> PushResult:
        """Make and push one edit on behalf of a server-side device (e.g. the MCP assistant).

        The device is registered on first use. Its HLC continues from its latest stored
        stamp for the user, read under the cross-worker lock, so its edits order after
        everything it made before (in any worker, or before a restart) and two workers never
        mint the same op id. A remove names the add tags the server has observed for ``key``.

        Raises:
            SyncError: 404 when removing a title that is not on the watchlist, 403 when the
                device was revoked.
        """
        current = self.store.device(user_id, device_id)
        if current is None:
            self.register_device(user_id, device_id, name=device_name,
                                 device_type=device_type)
        with self._serial():
            clock = self._device_clock(user_id, device_id)
            tags: tuple[str, ...] = ()
            if kind == "watchlist_remove":
                tags = tuple(sorted(self._doc(user_id).watchlist.observed(key)))
                if not tags:
                    raise SyncError(404, "not_found", f"content {key!r} is not on the "
                                    f"watchlist of user {user_id!r}", ["content_id"])
            ts = clock.now()
            op = Operation(ts.encode(), device_id, ts, kind, key, value, tags)
            self._device(user_id, device_id)
            self._validate(device_id, [op])
            done = self._commit(user_id, [op])
        return self._acknowledge(user_id, device_id, done)

    # --- fan-out ---------------------------------------------------------------------------

    def subscribe(self, user_id: str, device_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every later push of the user's *other* devices.

        Pushes answered by any worker arrive (those of other workers through the relay,
        a few milliseconds later, on its tailer thread), each once; so does the device's
        own revocation.

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

    def _changed(self, event: dict[str, Any],
                 stored: list[StoredOperation] | None = None) -> None:
        """A committed push or revocation: to the other workers (relay), then to this
        worker's listeners. A relay failure is logged, not raised: the change is durable
        and the other workers' devices still get it by pulling."""
        if self.shared is not None:
            try:
                self.shared.publish(SYNC_TOPIC, event)
            except Exception:
                log.exception("sync change of user %s was not relayed", event["user_id"])
        self._fan_out(event, stored)

    def _fan_out(self, event: dict[str, Any],
                 stored: list[StoredOperation] | None = None) -> None:
        """Hand a committed change to this worker's listeners: called by the worker that
        made it (``stored``: the new operations) and, as the relay handler, by every other
        worker (which re-reads the pushed ``server_ts`` range of the user from the store;
        stamp-then-commit is serial, so that range holds exactly that push's operations).

        ``event``: ``{"type": "ops", "user_id", "device_id", "first", "last"}`` or
        ``{"type": "revoked", "user_id", "device_id"}``.
        """
        user_id, device_id = event["user_id"], event["device_id"]
        with self._listeners_lock:
            if not self._listeners.get(user_id):
                return
        if event["type"] == "revoked":
            self._notify(user_id, None, {"type": "revoked", "device_id": device_id},
                         only=device_id)
            return
        if stored is None:
            stored = self.store.between(user_id, event["first"], event["last"])
        if stored:
            self._notify(user_id, device_id, {
                "type": "ops", "ops": [o.to_dict() for o in stored],
                "clock": stored[-1].server_ts})

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


@dataclass(frozen=True, slots=True)
class _Committed:
    """What one stamp-then-commit stored (the input of the acknowledgement)."""

    stamped: list[tuple[Operation, str]]  # every pushed op with its server stamp
    fresh: list[tuple[Operation, str]]  # the new ones, in stamp order
    duplicates: list[str]  # op ids stored before
    events: list[ViewingEvent]  # viewing events of the fresh ops


__all__ = ["Listener", "PullResult", "PushResult", "SyncConfig", "SyncError", "SyncService"]
