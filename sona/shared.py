"""What the BentoML worker processes of one server share: versions, locks and a relay.

BentoML runs ``workers`` identical processes behind one socket (issue 12: one per core). Each
keeps in-memory state (user states, sync documents, the search index, the served pipeline),
so a write answered by one worker must reach the others. :class:`SharedState` gives them
three things, all on the local file system next to the serving database:

- **versions**: a memory-mapped table of 64-bit counters. ``bump(domain, key)`` after a
  commit, ``version(domain, key)`` before a cached read: a cache entry remembers the version
  it was built at and is rebuilt when the counter moved. Exact (no staleness window) and a
  lock-free read of one mapped word. Keys hash into a fixed number of slots; two keys that
  share a slot only cost a needless rebuild.
- **locks**: ``lock(name)`` is one lock across threads and processes (``fcntl.flock``), for
  work that must be serial across workers (the sync service's stamp-then-commit).
- **relay**: ``publish(topic, payload)`` appends a JSON message to a small SQLite table
  and bumps the relay counter; each instance's tailer thread watches that counter and hands
  the messages of *other* instances to the handlers ``subscribe`` registered (catalog
  changes reach the other workers' search index and pipeline, sync operations reach
  WebSockets held by another worker, a model swap reaches every worker). Messages are
  delivered in publish order, at least once per running instance, about ``poll_s`` late.
  ``messages(topic, after)`` reads the same table as a journal, at once, e.g. under a lock
  every publisher holds (the catalog writes catch the entity resolver up this way).

Two :class:`SharedState` objects over the same directory behave like two workers, also in one
process (the tests use that). One host only: several machines need Redis or a database
notification channel instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import mmap
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
"""Receives the payload of a message another instance published."""

#: counter slots in the versions file (8 bytes each: 512 KiB)
DEFAULT_SLOTS = 1 << 16
#: relay messages older than this are deleted (seconds); an instance that was stopped
#: longer rebuilds its state at start anyway
RELAY_KEEP_S = 600.0
_RELAY_SLOT = 0  # slot 0 holds the relay's counter; hashed keys use 1..slots-1


class SharedState:
    """Versions, locks and a message relay shared by the worker processes of one server.

    Args:
        directory: folder of the files (the serving database's folder).
        name: file name prefix (one per server: ``<name>.versions``, ``<name>.relay.db``).
        slots: counter slots of the versions table.
        poll_s: how often the tailer thread looks for new messages.
    """

    def __init__(self, directory: str | Path, *, name: str = "sona-shared",
                 slots: int = DEFAULT_SLOTS, poll_s: float = 0.01) -> None:
        if slots < 2:
            raise ValueError(f"slots must be at least 2, got {slots}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.slots = slots
        self.poll_s = float(poll_s)
        # who published a message: this instance only (a process may hold several)
        self.origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._versions_path = self.directory / f"{name}.versions"
        self._fd = os.open(self._versions_path, os.O_RDWR | os.O_CREAT, 0o600)
        size = 8 * slots
        with self._flock(self._fd):
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._words = memoryview(self._map).cast("Q")
        self._bump_lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._locks_guard = threading.Lock()
        self._relay_path = self.directory / f"{name}.relay.db"
        self._relay_lock = threading.Lock()
        self._relay = self._connect()
        self._handlers: dict[str, list[Handler]] = {}
        self._last_seq = self._max_seq()
        self._seen_version = self._words[_RELAY_SLOT]
        self._last_prune = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_database(cls, database: str | Path, **options: Any) -> SharedState:
        """The shared state of the server whose serving database is ``database`` (its
        folder, name ``<file>.shared``): what :class:`~sona.serving.app.SonaApp` opens, and
        what a CLI command changing cached state (``sona keys revoke``) bumps."""
        path = Path(database).resolve()
        return cls(path.parent, name=f"{path.name}.shared", **options)

    # --- versions ---------------------------------------------------------------------

    def _slot(self, domain: str, key: str) -> int:
        digest = hashlib.blake2b(f"{domain}\0{key}".encode(), digest_size=8).digest()
        return 1 + int.from_bytes(digest, "little") % (self.slots - 1)

    def version(self, domain: str, key: str = "") -> int:
        """The counter of ``(domain, key)``: changes whenever any instance bumps it."""
        return int(self._words[self._slot(domain, key)])

    def bump(self, domain: str, key: str = "") -> int:
        """Advance the counter of ``(domain, key)`` (after the change is committed)."""
        return self._increment(self._slot(domain, key))

    def _increment(self, slot: int) -> int:
        with self._bump_lock, self._flock(self._fd):
            value = (int(self._words[slot]) + 1) % (1 << 64)
            self._words[slot] = value
            return value

    # --- locks ------------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def _flock(fd: int) -> Iterator[None]:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` against every thread of every instance on this folder."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"lock names are letters, digits, - and _: got {name!r}")
        with self._locks_guard:
            entry = self._locks.get(name)
            if entry is None:
                fd = os.open(self.directory / f"{self.name}.{name}.lock",
                             os.O_RDWR | os.O_CREAT, 0o600)
                entry = self._locks[name] = (threading.Lock(), fd)
        thread_lock, fd = entry
        with thread_lock, self._flock(fd):
            yield

    # --- relay ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._relay_path, timeout=30.0, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS relay (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "origin TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, "
                     "at REAL NOT NULL)")
        return conn

    def _max_seq(self) -> int:
        with self._relay_lock:
            return self._sequence()

    def _sequence(self) -> int:
        # the newest sequence number ever given (AUTOINCREMENT's counter, which pruning
        # leaves alone, while MAX(seq) falls back to 0 once every message was pruned);
        # the caller holds _relay_lock
        row = self._relay.execute("SELECT COALESCE(MAX(seq), 0) FROM relay").fetchone()
        counter = self._relay.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'relay'").fetchone()
        return max(int(row[0]), 0 if counter is None else int(counter[0]))

    def head(self) -> int:
        """The sequence number of the newest message published so far."""
        return self._max_seq()

    def skip_to(self, seq: int) -> None:
        """Deliver only messages after ``seq`` from now on: state just built from the
        database already holds what earlier messages announced (the start-up takes
        :meth:`head` before reading, then skips to it)."""
        self._last_seq = max(self._last_seq, int(seq))

    def messages(self, topic: str, after: int) -> tuple[int, list[dict[str, Any]] | None]:
        """Read the relay as a journal: the payloads on ``topic`` published after sequence
        number ``after`` by every instance, this one included, in publish order, and the
        sequence number they reach (the ``after`` of the next call). Unlike
        :meth:`subscribe`, the caller reads when it needs to be current, e.g. under a
        :meth:`lock` that every publisher holds while it writes and publishes: then nothing
        published before the lock was taken is missing.

        The list is ``None`` when messages after ``after`` were pruned already (older than
        :data:`RELAY_KEEP_S`): the caller rebuilds from the source of truth instead.
        """
        with self._relay_lock:
            top = self._sequence()
            rows = self._relay.execute(
                "SELECT seq, CASE WHEN topic = ? THEN payload END FROM relay "
                "WHERE seq > ? AND seq <= ? ORDER BY seq", (topic, after, top)).fetchall()
        # sequence numbers are consecutive: a hole is a pruned message (of some topic);
        # ``after`` beyond the newest number: the relay file was replaced
        if after > top or [int(seq) for seq, _ in rows] != list(range(after + 1, top + 1)):
            return top, None
        return top, [json.loads(text) for _, text in rows if text is not None]

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for each message on ``topic`` from another instance
        (on the tailer thread, in publish order; exceptions are logged, not raised)."""
        self._handlers.setdefault(topic, []).append(handler)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` (JSON-serialisable) to the other instances' ``topic`` handlers.

        Raises:
            TypeError: the payload is not JSON-serialisable.
        """
        text = json.dumps(payload, separators=(",", ":"))
        with self._relay_lock:
            self._relay.execute("INSERT INTO relay (origin, topic, payload, at) "
                                "VALUES (?, ?, ?, ?)", (self.origin, topic, text, time.time()))
        self._increment(_RELAY_SLOT)

    def poll(self) -> int:
        """Deliver the messages published since the last poll; returns how many were for
        this instance's handlers (the tailer thread calls this every ``poll_s``)."""
        seen = int(self._words[_RELAY_SLOT])
        if seen == self._seen_version:
            return 0
        self._seen_version = seen
        with self._relay_lock:
            rows = self._relay.execute(
                "SELECT seq, origin, topic, payload FROM relay WHERE seq > ? ORDER BY seq",
                (self._last_seq,)).fetchall()
        delivered = 0
        for seq, origin, topic, text in rows:
            self._last_seq = max(self._last_seq, int(seq))
            if origin == self.origin:
                continue
            for handler in self._handlers.get(topic, ()):
                delivered += 1
                try:
                    handler(json.loads(text))
                except Exception:  # noqa: BLE001 - one bad handler must not stop the relay
                    log.exception("relay handler for %r failed", topic)
        now = time.monotonic()
        if now - self._last_prune > 60.0:
            self._last_prune = now
            with self._relay_lock:
                self._relay.execute("DELETE FROM relay WHERE at < ?",
                                    (time.time() - RELAY_KEEP_S,))
        return delivered

    def start(self) -> None:
        """Start the tailer thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._tail, name="sona-shared-relay",
                                        daemon=True)
        self._thread.start()

    def _tail(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - e.g. a locked relay file: try again next tick
                log.exception("relay poll failed")

    def close(self) -> None:
        """Stop the tailer and release the files."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._locks_guard:
            for _, fd in self._locks.values():
                os.close(fd)
            self._locks.clear()
        with self._relay_lock:
            self._relay.close()
        self._words.release()
        self._map.close()
        os.close(self._fd)


__all__ = ["DEFAULT_SLOTS", "Handler", "SharedState"]
