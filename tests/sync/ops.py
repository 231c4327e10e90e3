"""Test helpers shared by the sync tests: a settable clock and an operation maker."""

from __future__ import annotations

from sona.sync import Operation, Timestamp


class Clock:
    """A settable wall clock in milliseconds."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def op(device: str, wall: int, kind: str, key: str, value: object = None,
       tags: tuple[str, ...] = (), counter: int = 0) -> Operation:
    """An operation of ``device`` stamped ``(wall, counter)``."""
    ts = Timestamp(wall, counter, device)
    return Operation(ts.encode(), device, ts, kind, key, value, tags)  # type: ignore[arg-type]
