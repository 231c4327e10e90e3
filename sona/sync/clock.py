"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).

A timestamp is ``(wall_ms, counter, node)``: the largest physical time seen so far in
milliseconds, a counter that orders events within one millisecond, and the id of the node
(device) that made it, which breaks ties so that no two nodes ever produce equal stamps.
Timestamps order lexicographically by those three fields, which is also the order of their
text form (:meth:`Timestamp.encode`, zero-padded), so the database can sort and compare them
as strings.

The clock never goes backwards, even when the wall clock does, and after
:meth:`HybridLogicalClock.observe` every later stamp is greater than the observed one: an
edit made after seeing another device's edit always wins a last-writer-wins merge against it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sona.errors import SonaError

#: digits of the wall-clock and counter parts of the text form
_WALL_DIGITS, _COUNTER_DIGITS = 15, 6
_MAX_COUNTER = 10**_COUNTER_DIGITS - 1


class ClockError(SonaError, ValueError):
    """A malformed timestamp, or one too far ahead of this clock's wall time."""


def wall_ms() -> int:
    """Milliseconds since the Unix epoch (the default physical clock)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """One HLC stamp; compares by ``(wall_ms, counter, node)``."""

    wall_ms: int  # physical component, milliseconds since the epoch
    counter: int  # logical component within one millisecond
    node: str  # device id of the writer (tie-break)

    def encode(self) -> str:
        """``"<wall_ms:015d>.<counter:06d>.<node>"``: sorts as text like the stamp itself."""
        return f"{self.wall_ms:0{_WALL_DIGITS}d}.{self.counter:0{_COUNTER_DIGITS}d}.{self.node}"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Inverse of :meth:`encode`.

        Raises:
            ClockError: not ``<15 digits>.<6 digits>.<node>`` with a non-empty node.
        """
        parts = text.split(".", 2)
        if (len(parts) != 3 or len(parts[0]) != _WALL_DIGITS or not parts[0].isdigit()
                or len(parts[1]) != _COUNTER_DIGITS or not parts[1].isdigit() or not parts[2]):
            raise ClockError(f"malformed HLC timestamp {text!r}: expected "
                             "'<15-digit wall ms>.<6-digit counter>.<node>'")
        return cls(int(parts[0]), int(parts[1]), parts[2])

    @property
    def seconds(self) -> float:
        """The physical component in Unix seconds."""
        return self.wall_ms / 1000.0


class HybridLogicalClock:
    """A thread-safe HLC for one node.

    Args:
        node: this node's id (stamped into every timestamp).
        physical: the wall clock in milliseconds (injectable for tests).
        max_drift_ms: :meth:`observe` rejects stamps further ahead of the wall clock than
            this (a device with a wrong clock must not drag every other clock forward).
        last: the latest stamp issued before (restores monotonicity across restarts).
    """

    def __init__(self, node: str, *, physical: Callable[[], int] = wall_ms,
                 max_drift_ms: int = 60_000, last: Timestamp | None = None) -> None:
        if not node:
            raise ClockError("an HLC needs a non-empty node id")
        self.node = node
        self.physical = physical
        self.max_drift_ms = max_drift_ms
        self._wall = last.wall_ms if last is not None else 0
        self._counter = last.counter if last is not None else 0
        self._lock = threading.Lock()

    def _stamp(self) -> Timestamp:
        if self._counter > _MAX_COUNTER:
            raise ClockError(f"HLC counter overflow at wall time {self._wall} ms")
        return Timestamp(self._wall, self._counter, self.node)

    def now(self) -> Timestamp:
        """A stamp for a local event (or a send): greater than every stamp before."""
        with self._lock:
            pt = self.physical()
            if pt > self._wall:
                self._wall, self._counter = pt, 0
            else:
                self._counter += 1
            return self._stamp()

    def check(self, remote: Timestamp) -> None:
        """Raise :class:`ClockError` when ``remote`` is too far ahead of this clock.

        "This clock" is the later of the wall clock and the latest stamp issued, so a wall
        clock that was set back does not make this node refuse its own history.
        """
        ahead = remote.wall_ms - max(self.physical(), self._wall)
        if ahead > self.max_drift_ms:
            raise ClockError(f"timestamp {remote.encode()} is {ahead} ms ahead of this "
                             f"clock (max drift {self.max_drift_ms} ms)")

    def observe(self, remote: Timestamp) -> Timestamp:
        """Merge a received stamp; returns a new local stamp greater than both.

        Raises:
            ClockError: ``remote`` is more than ``max_drift_ms`` ahead of the wall clock.
        """
        self.check(remote)
        with self._lock:
            pt = self.physical()
            wall = max(self._wall, remote.wall_ms, pt)
            if wall == self._wall and wall == remote.wall_ms:
                self._counter = max(self._counter, remote.counter) + 1
            elif wall == self._wall:
                self._counter += 1
            elif wall == remote.wall_ms:
                self._counter = remote.counter + 1
            else:
                self._counter = 0
            self._wall = wall
            return self._stamp()

    def advance_to(self, stamp: Timestamp) -> None:
        """Never issue a stamp at or below ``stamp`` (no drift check: our own history)."""
        with self._lock:
            if (stamp.wall_ms, stamp.counter) > (self._wall, self._counter):
                self._wall, self._counter = stamp.wall_ms, stamp.counter


__all__ = ["ClockError", "HybridLogicalClock", "Timestamp", "wall_ms"]
