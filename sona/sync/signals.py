"""Sync operations that are recommender signals, as SONA viewing events.

Watchlist adds and playback progress feed the recommender through the same event path as
playback (SPEC §5: progress events become ViewingEvents with ``completion_rate =
position/duration``, a rewatch when the title had been completed before). The sync service
turns new operations into :class:`~sona.profile.ViewingEvent` values with these rules and
hands them to a sink; the serving app's sink is the profile update of
``POST /api/v1/profile/update``, so they are stored and weighted like any viewing event.

* ``progress``: only a write that becomes the title's current progress (a stale write from a
  device that was offline loses the LWW merge and says nothing new); ``completion_rate`` is
  ``position_s / duration_s``; ``is_rewatch`` when the previous progress had reached
  ``completed_at`` and the new position is earlier (the title was started again).
* ``watchlist_add``: only when the title was not on the list already; an intent to watch,
  counted as a view with ``watchlist_completion`` (default 0.3, the least completion that
  qualifies in the preference vector, so its weight is the smallest a view can have).
* removes and settings are not signals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sona.profile import ViewingEvent
from sona.sync.document import Operation, SyncDocument, completion

SignalSink = Callable[[str, list[ViewingEvent]], None]
"""Receives ``(user_id, events)`` after a push stored new operations."""


@dataclass(frozen=True, slots=True)
class SignalConfig:
    """How sync operations become viewing events."""

    # completion rate a watchlist add counts as (0-1; < 0.3 would never count)
    watchlist_completion: float = 0.3
    # progress at or above this completion marks the title as completed (0-1)
    completed_at: float = 0.9


def viewing_events(before: SyncDocument, ops: Sequence[Operation],
                   config: SignalConfig = SignalConfig()) -> list[ViewingEvent]:
    """Events for the new ``ops`` applied in order to ``before`` (see module docstring)."""
    doc = before
    events: list[ViewingEvent] = []
    for op in ops:
        after = doc.apply(op)
        if op.kind == "watchlist_add" and op.key not in doc.watchlist:
            events.append(ViewingEvent(op.key, op.ts.seconds, config.watchlist_completion))
        elif op.kind == "progress" and after.progress[op.key].ts == op.ts:
            previous = doc.progress.get(op.key)
            done = completion(previous.value) if previous is not None else 0.0
            rewatch = done >= config.completed_at and completion(op.value) < done
            events.append(ViewingEvent(op.key, op.ts.seconds, completion(op.value),
                                       is_rewatch=rewatch))
        doc = after
    return events


__all__ = ["SignalConfig", "SignalSink", "viewing_events"]
