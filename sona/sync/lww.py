"""Last-writer-wins register: the value with the greatest HLC stamp wins.

SPEC §5 (crates/sync): "higher HLC wins, device_id tie-break" — the tie-break is built into
:class:`~sona.sync.clock.Timestamp` ordering (``node`` is the device id). Two writes with
the very same stamp can only come from one device's one edit, but :func:`merge_lww` still
orders them by the value's canonical JSON so that the merge is a total order (commutative
and associative even for inputs no real device produces).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sona.sync.clock import Timestamp


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class LWWRegister:
    """A value and the stamp of the write that set it (``value`` must be JSON-able)."""

    value: Any
    ts: Timestamp

    def _key(self) -> tuple[Timestamp, str]:
        return self.ts, canonical_json(self.value)

    def merge(self, other: LWWRegister) -> LWWRegister:
        """The later of the two writes (see module docstring for equal stamps)."""
        return self if self._key() >= other._key() else other


def merge_lww(a: LWWRegister | None, b: LWWRegister | None) -> LWWRegister | None:
    """Merge two optional registers (``None``: never written)."""
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


__all__ = ["LWWRegister", "canonical_json", "merge_lww"]
