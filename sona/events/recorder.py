"""The one event path: append to the log, then feed the new viewing signals to the profile.

:class:`EventRecorder` is what every producer calls (the batch route, playback sessions,
progress upserts): it appends the events in one durable transaction, and only the events
that were **new** to the log (not replays of an acknowledged id) are turned into SONA
viewing events (:mod:`sona.events.viewing`) and handed to the sink, grouped by user. The
serving app's sink is the profile update of ``POST /api/v1/profile/update``, so a logged
rating or view changes the user's preference vector at once, and a resent batch changes
nothing.

A sink failure does not undo the append (the log is the record; a profile can be rebuilt
from it): it is logged and reported in :attr:`RecordResult.profile_errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sona.events.log import EventLog, LogEvent
from sona.events.viewing import DEFAULT_RULES, ViewingRules, to_viewing_event
from sona.profile import ViewingEvent

log = logging.getLogger(__name__)

ViewingSink = Callable[[str, list[ViewingEvent]], None]
"""Receives ``(user_id, viewing events)`` for events newly stored in the log."""


@dataclass(frozen=True, slots=True)
class EventLogConfig:
    """Settings of the event log (the ``events`` block of the serving YAML)."""

    # SQLAlchemy URL; None: events.db next to the serving database
    url: str | None = None
    # how logged events become viewing events
    rules: ViewingRules = field(default_factory=ViewingRules)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Outcome of :meth:`EventRecorder.record`: every id in ``stored`` is committed."""

    stored: list[str]  # ids new to the log
    duplicates: list[str]  # ids already in the log (acknowledged again, stored once)
    viewing_events: int  # new events that were viewing signals, sent to the sink
    profile_errors: dict[str, str] = field(default_factory=dict)  # user id -> sink error


class EventRecorder:
    """Append events and update profiles from the new viewing signals.

    Args:
        log: the event log.
        sink: receives the viewing events of new events per user (None: log only).
        rules: the event-to-viewing conversion defaults.
    """

    def __init__(self, log: EventLog, sink: ViewingSink | None = None,
                 rules: ViewingRules = DEFAULT_RULES) -> None:
        self.log = log
        self.sink = sink
        self.rules = rules

    def record(self, events: Sequence[LogEvent]) -> RecordResult:
        """Append ``events`` (durably), then send their new viewing signals to the sink."""
        outcome = self.log.append(events)
        fresh = set(outcome.stored)
        by_user: dict[str, list[ViewingEvent]] = {}
        for ev in events:
            if ev.event_id not in fresh:
                continue
            fresh.discard(ev.event_id)  # a repeated id within the batch counts once
            viewing = to_viewing_event(ev, self.rules)
            if viewing is not None:
                by_user.setdefault(ev.user_id, []).append(viewing)
        errors: dict[str, str] = {}
        if self.sink is not None:
            for user_id, viewing_events in by_user.items():
                try:
                    self.sink(user_id, viewing_events)
                except Exception as exc:  # the events are stored; report, keep going
                    log.exception("profile update of %s from %d logged event(s) failed",
                                  user_id, len(viewing_events))
                    errors[user_id] = str(exc) or type(exc).__name__
        return RecordResult(outcome.stored, outcome.duplicates,
                            sum(len(v) for v in by_user.values()), errors)


__all__ = ["EventLogConfig", "EventRecorder", "RecordResult", "ViewingSink"]
