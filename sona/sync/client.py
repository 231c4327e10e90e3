"""A sync client with an offline queue: what a device (app, test, simulator) runs.

Edits apply to the local :class:`~sona.sync.document.SyncDocument` at once and are queued
in a local SQLite file (through :func:`sona.db.make_engine`), so they survive the app
being closed while offline. :meth:`SyncClient.sync` pushes the queue in order and removes an
operation only when the server acknowledged it (a lost answer means a replay, which the
server recognises as a duplicate), then pulls everything stored since its cursor. Network
failures and 5xx answers leave the queue as it is: the next :meth:`~SyncClient.sync`
replays it. :meth:`SyncClient.listen` follows the WebSocket channel, on which the server
sends the user's other devices' edits as they are stored.

Every operation the client has seen is kept locally too, so its document is rebuilt from
the file after a restart and equals the server's once both have the same operations.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, update

from sona.db import make_engine, sqlite_url
from sona.errors import SonaError
from sona.sync.clock import HybridLogicalClock, Timestamp, wall_ms
from sona.sync.document import Operation, OpKind, SyncDocument

log = logging.getLogger(__name__)

_meta = MetaData()
_ops = Table("client_ops", _meta,
             Column("seq", Integer, primary_key=True, autoincrement=True),
             Column("op_id", String(160), unique=True, nullable=False),
             Column("body", Text, nullable=False),
             Column("pending", Integer, nullable=False))
_kv = Table("client_meta", _meta,
            Column("key", String(64), primary_key=True),
            Column("value", Text, nullable=False))


class SyncClientError(SonaError):
    """The server refused a request (4xx): ``status`` and its JSON ``body``."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"sync server answered {status}: {message}")


@dataclass(frozen=True, slots=True)
class SyncReport:
    """Outcome of one :meth:`SyncClient.sync`."""

    online: bool  # False: the server could not be reached (the queue is kept)
    pushed: int  # operations acknowledged in this call
    pulled: int  # operations received in this call
    pending: int  # operations still queued


class SyncClient:
    """One device of one user.

    Args:
        base_url: the SONA service, e.g. ``http://127.0.0.1:3000``.
        user_id: whose data this device syncs.
        device_id: this device (registered with :meth:`register`).
        api_key: a key with ``write`` scope.
        queue_path: the local SQLite file (queue, known operations, cursor).
        timeout_s: per-request timeout.
        physical: wall clock in milliseconds (simulations inject skewed clocks).
    """

    def __init__(self, base_url: str, *, user_id: str, device_id: str, api_key: str,
                 queue_path: str | Path, timeout_s: float = 10.0,
                 physical: Callable[[], int] = wall_ms) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.device_id = device_id
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.timeout_s = timeout_s
        self.engine = make_engine(sqlite_url(queue_path), durable=True)
        _meta.create_all(self.engine)
        self._lock = threading.RLock()
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers,
                                  timeout=timeout_s)
        self._known: set[str] = set()
        doc = SyncDocument()
        last: Timestamp | None = None
        with self.engine.connect() as conn:
            for row in conn.execute(select(_ops.c.op_id, _ops.c.body).order_by(_ops.c.seq)):
                op = Operation.from_dict(json.loads(row.body))
                doc = doc.apply(op)
                self._known.add(row.op_id)
                last = op.ts if last is None or op.ts > last else last
        self._doc = doc
        self.clock = HybridLogicalClock(device_id, physical=physical,
                                        max_drift_ms=10**12, last=last)

    def close(self) -> None:
        """Close the HTTP client and the local database."""
        self._http.close()
        self.engine.dispose()

    # --- state -----------------------------------------------------------------------------

    @property
    def document(self) -> SyncDocument:
        """The local state: every known operation merged."""
        with self._lock:
            return self._doc

    @property
    def cursor(self) -> str | None:
        """The server clock up to which this device has pulled."""
        with self.engine.connect() as conn:
            return conn.scalar(select(_kv.c.value).where(_kv.c.key == "cursor"))

    def pending(self) -> list[Operation]:
        """Queued (unacknowledged) operations, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_ops.c.body).where(_ops.c.pending == 1)
                                .order_by(_ops.c.seq))
            return [Operation.from_dict(json.loads(r.body)) for r in rows]

    def acknowledged(self) -> set[str]:
        """Ids of this device's own operations the server has acknowledged."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_ops.c.op_id, _ops.c.body).where(_ops.c.pending == 0))
            return {r.op_id for r in rows
                    if json.loads(r.body)["device_id"] == self.device_id}

    def _remember(self, ops: list[Operation], *, pending: bool) -> None:
        with self._lock, self.engine.begin() as conn:
            for op in ops:
                if op.op_id in self._known:
                    continue
                conn.execute(insert(_ops).values(op_id=op.op_id, body=json.dumps(op.to_dict()),
                                                 pending=int(pending)))
                self._known.add(op.op_id)
                self._doc = self._doc.apply(op)

    # --- local edits -------------------------------------------------------------------------

    def edit(self, kind: OpKind, key: str, value: Any = None) -> Operation:
        """Make an edit now: applied locally and queued for the server."""
        with self._lock:
            tags: tuple[str, ...] = ()
            if kind == "watchlist_remove":
                tags = tuple(sorted(self._doc.watchlist.observed(key)))
            ts = self.clock.now()
            op = Operation(ts.encode(), self.device_id, ts, kind, key, value, tags)
            self._remember([op], pending=True)
            return op

    def add_to_watchlist(self, content_id: str) -> Operation:
        """Queue a watchlist add."""
        return self.edit("watchlist_add", str(content_id))

    def remove_from_watchlist(self, content_id: str) -> Operation:
        """Queue a remove of every add of ``content_id`` this device has seen."""
        return self.edit("watchlist_remove", str(content_id))

    def set_progress(self, content_id: str, position_s: float, duration_s: float) -> Operation:
        """Queue a playback position."""
        return self.edit("progress", str(content_id),
                         {"position_s": float(position_s), "duration_s": float(duration_s)})

    def set_setting(self, key: str, value: Any) -> Operation:
        """Queue a setting (any JSON value)."""
        return self.edit("setting", key, value)

    # --- server ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, path, **kwargs)
        if resp.status_code >= 500:
            raise httpx.HTTPStatusError(f"server error {resp.status_code}", request=resp.request,
                                        response=resp)
        body = resp.json() if resp.content else None
        if resp.status_code >= 400:
            raise SyncClientError(resp.status_code, body)
        return body

    def register(self, name: str = "", device_type: str = "mobile") -> dict[str, Any]:
        """Register this device with the server (idempotent)."""
        return dict(self._call("POST", "/api/v1/sync/devices", json={
            "user_id": self.user_id, "device_id": self.device_id, "name": name,
            "device_type": device_type}))

    def push(self, batch_size: int = 200) -> int:
        """Push the queue in order; returns how many operations the server acknowledged.

        Raises:
            httpx.TransportError, httpx.HTTPStatusError: offline or a server error (the
                unacknowledged rest stays queued).
            SyncClientError: the server refused the operations (4xx).
        """
        done = 0
        while True:
            batch = self.pending()[:batch_size]
            if not batch:
                return done
            body = self._call("POST", "/api/v1/sync/push", json={
                "user_id": self.user_id, "device_id": self.device_id,
                "ops": [_wire(op) for op in batch]})
            acked = set(body["accepted"]) | set(body["duplicates"])
            with self._lock, self.engine.begin() as conn:
                conn.execute(update(_ops).where(_ops.c.op_id.in_(acked)).values(pending=0))
            done += len(acked)
            if not acked:  # nothing moved: never loop forever
                return done

    def pull(self) -> int:
        """Fetch every operation stored since the cursor; returns how many arrived."""
        got = 0
        while True:
            params: dict[str, Any] = {"user_id": self.user_id, "device_id": self.device_id,
                                      "limit": 500}
            cursor = self.cursor
            if cursor:
                params["since"] = cursor
            body = self._call("GET", "/api/v1/sync/pull", params=params)
            ops = [Operation.from_dict(o) for o in body["ops"]]
            self.receive(ops)
            got += len(ops)
            if body["clock"]:
                with self._lock, self.engine.begin() as conn:
                    conn.execute(_kv.delete().where(_kv.c.key == "cursor"))
                    conn.execute(insert(_kv).values(key="cursor", value=body["clock"]))
            if not body["more"]:
                return got

    def receive(self, ops: list[Operation]) -> None:
        """Merge operations from the server (pull or channel) into the local state."""
        for op in ops:
            if op.device_id != self.device_id:
                self.clock.observe(op.ts)  # a later local edit wins over what we saw
            else:
                self.clock.advance_to(op.ts)  # our own edits from before a reinstall
        self._remember(ops, pending=False)

    def sync(self) -> SyncReport:
        """Push the queue, then pull; an unreachable server leaves everything queued."""
        pushed = pulled = 0
        try:
            pushed = self.push()
            pulled = self.pull()
            online = True
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            log.info("sync of %s/%s deferred: %s", self.user_id, self.device_id, exc)
            online = False
        return SyncReport(online, pushed, pulled, len(self.pending()))

    # --- channel -----------------------------------------------------------------------------

    def listen(self, stop: threading.Event, *, on_message: Callable[[dict[str, Any]], None]
               | None = None, connected: threading.Event | None = None) -> None:
        """Follow the WebSocket channel until ``stop`` is set or the server goes away.

        Edits of the user's other devices are merged as they arrive (the cursor only moves
        on :meth:`pull`, so a missed message is still pulled later). ``connected`` is set
        once the server accepted the channel.

        Raises:
            httpx_ws.WebSocketUpgradeError: the server refused the channel (key, device).
        """
        from httpx_ws import WebSocketDisconnect, WebSocketNetworkError, connect_ws

        url = (f"{self.base_url}/api/v1/sync/ws?user_id={self.user_id}"
               f"&device_id={self.device_id}")
        with httpx.Client(headers=self.headers, timeout=self.timeout_s) as http, \
                connect_ws(url, http, max_message_size_bytes=8 * 2**20) as ws:  # type: ignore[var-annotated]
            while not stop.is_set():
                try:
                    message = ws.receive_json(timeout=0.2)
                except queue.Empty:
                    continue
                except (WebSocketDisconnect, WebSocketNetworkError):
                    return
                if message.get("type") == "hello" and connected is not None:
                    connected.set()
                if message.get("type") == "ops":
                    self.receive([Operation.from_dict(o) for o in message["ops"]])
                if on_message is not None:
                    on_message(message)
                if message.get("type") == "revoked":
                    return


def _wire(op: Operation) -> dict[str, Any]:
    body = op.to_dict()
    if op.kind != "watchlist_remove":
        body.pop("tags")
    if op.kind == "watchlist_add" or op.kind == "watchlist_remove":
        body.pop("value")
    return body


__all__ = ["SyncClient", "SyncClientError", "SyncReport"]
