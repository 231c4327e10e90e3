"""Hybrid logical clock: monotonic under a wall clock that jumps back, causality after
observe, drift rejection, text form."""

from __future__ import annotations

import pytest

from sona.sync import ClockError, HybridLogicalClock, Timestamp


def test_now_is_monotonic_when_the_wall_clock_goes_back() -> None:
    wall = iter([5_000, 5_000, 4_000, 6_000])
    clock = HybridLogicalClock("a", physical=lambda: next(wall))
    stamps = [clock.now() for _ in range(4)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    assert [(s.wall_ms, s.counter) for s in stamps] == [(5000, 0), (5000, 1), (5000, 2),
                                                          (6000, 0)]


def test_observe_orders_later_local_events_after_the_remote_one() -> None:
    clock = HybridLogicalClock("a", physical=lambda: 1_000)
    remote = Timestamp(1_500, 7, "b")  # a device 0.5 s ahead
    after = clock.observe(remote)
    assert after > remote and (after.wall_ms, after.counter) == (1_500, 8)
    assert clock.now() > after


def test_observe_rejects_stamps_beyond_the_drift_bound() -> None:
    clock = HybridLogicalClock("server", physical=lambda: 1_000, max_drift_ms=60_000)
    with pytest.raises(ClockError, match="ahead of this clock"):
        clock.observe(Timestamp(1_000 + 60_001, 0, "b"))
    assert clock.observe(Timestamp(1_000 + 60_000, 0, "b")).wall_ms == 61_000


def test_restart_continues_after_the_last_stamp() -> None:
    last = Timestamp(9_000, 4, "a")
    clock = HybridLogicalClock("a", physical=lambda: 1_000, last=last)  # clock reset to 1 s
    assert clock.now() == Timestamp(9_000, 5, "a")


@pytest.mark.parametrize("text", ["", "123.000001.a", "000000000001000.1.a",
                                  "000000000001000.000001.", "x00000000001000.000001.a"])
def test_parse_names_the_expected_format(text: str) -> None:
    with pytest.raises(ClockError, match="malformed HLC timestamp"):
        Timestamp.parse(text)
