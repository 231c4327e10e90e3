"""The append-only user-activity event log and the one event path into profiles.

:class:`EventLog` stores events (idempotent by ``event_id``, durable, never updated or
deleted); :class:`EventRecorder` appends and turns new viewing signals into profile
updates; :mod:`sona.events.export` turns the log into an interactions dataset.
"""

from sona.events.log import AppendResult, EventLog, LogEvent, StoredEvent
from sona.events.recorder import EventLogConfig, EventRecorder, RecordResult, ViewingSink
from sona.events.viewing import (
    CONTENT_TYPES,
    DEFAULT_RULES,
    VIEWING_TYPES,
    ViewingRules,
    completion_of,
    to_viewing_event,
)

__all__ = [
    "CONTENT_TYPES", "DEFAULT_RULES", "VIEWING_TYPES", "AppendResult", "EventLog",
    "EventLogConfig", "EventRecorder", "LogEvent", "RecordResult", "StoredEvent",
    "ViewingRules", "ViewingSink", "completion_of", "to_viewing_event",
]
