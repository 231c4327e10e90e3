"""Hypothesis strategies for sync operations (small id spaces, so edits collide)."""

from __future__ import annotations

from hypothesis import strategies as st

from sona.sync import Operation, SyncDocument, Timestamp
from sona.sync.lww import LWWRegister
from sona.sync.orset import ORSet

NODES = ("phone", "tv", "laptop")
KEYS = ("1", "2", "3")

timestamps = st.builds(Timestamp, st.integers(1_000, 1_004), st.integers(0, 3),
                       st.sampled_from(NODES))
registers = st.builds(LWWRegister, st.integers(0, 3), timestamps)


@st.composite
def operation_lists(draw: st.DrawFn, max_size: int = 25) -> list[Operation]:
    """Operations with unique ids; removes name a subset of earlier adds' tags of their key."""
    n = draw(st.integers(0, max_size))
    ops: list[Operation] = []
    for i in range(n):
        ts = draw(timestamps)
        kind = draw(st.sampled_from(["watchlist_add", "watchlist_remove", "progress",
                                     "setting"]))
        key = draw(st.sampled_from(KEYS))
        op_id = f"{ts.encode()}#{i}"
        value = None
        tags: tuple[str, ...] = ()
        if kind == "progress":
            duration = draw(st.integers(1, 100))
            value = {"position_s": float(draw(st.integers(0, duration))),
                     "duration_s": float(duration)}
        elif kind == "setting":
            value = draw(st.one_of(st.integers(0, 3), st.sampled_from(["dark", "light"])))
        elif kind == "watchlist_remove":
            seen = [o.op_id for o in ops if o.kind == "watchlist_add" and o.key == key]
            tags = tuple(draw(st.lists(st.sampled_from(seen), unique=True))) if seen else ()
        ops.append(Operation(op_id, ts.node, ts, kind, key, value, tags))  # type: ignore[arg-type]
    return ops


@st.composite
def orsets(draw: st.DrawFn) -> ORSet:
    """OR-Sets reached by random adds and removes."""
    s = ORSet()
    for i in range(draw(st.integers(0, 12))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            s = s.add(key, f"t{draw(st.integers(0, 20))}-{i % 3}")
        else:
            s = s.remove(draw(st.lists(st.sampled_from(sorted(s.observed(key)) or ["none"]))))
    return s


@st.composite
def documents(draw: st.DrawFn) -> SyncDocument:
    """Documents reached from random operation lists."""
    return SyncDocument().apply_all(draw(operation_lists(max_size=15)))
