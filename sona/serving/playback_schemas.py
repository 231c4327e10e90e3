"""Wire schemas of the playback and event-log routes (pydantic; unknown fields are errors).

Ids follow the serving API (:mod:`sona.serving.schemas`: user and content ids 1-128
characters, integers accepted); device ids are 1-64 of ``[A-Za-z0-9_-]`` as in sync;
regions are ISO 3166 alpha-2 codes. Every request model is also the route's declaration
in the OpenAPI document (:mod:`sona.serving.routing`), so validation and document agree.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sona.events import CONTENT_TYPES, completion_of
from sona.serving.schemas import ContentId, UserId
from sona.wire import INT, NOT_BLANK, Bool, Number, Timestamp

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Region = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2, e.g. US")]
EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=NOT_BLANK)]
SessionId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Quality = Literal["auto", "SD", "HD", "UHD", "HDR"]
EventType = Literal[
    "search_query", "search_result_click", "content_view", "content_rating",
    "playback_start", "playback_pause", "playback_resume", "playback_progress",
    "playback_complete", "playback_abandon", "profile_update", "preference_change"]

#: most events one ``POST /api/v1/events/log`` may carry
MAX_BATCH = 1000
#: largest ``metadata`` object of one event, bytes of compact JSON
MAX_METADATA_BYTES = 4096
#: a film longer than this is a mistake (seconds; 24 h)
MAX_DURATION_S = 86_400.0


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re", str_strip_whitespace=True)


# --- playback ---------------------------------------------------------------------------

class StartSessionRequest(_Request):
    """``POST /api/v1/playback/sessions``: start watching a title."""

    user_id: UserId
    content_id: ContentId
    device_id: DeviceId
    duration_seconds: Number = Field(gt=0, le=MAX_DURATION_S, description="title length")
    quality: Quality = "auto"
    region: Region | None = None


class SessionPath(_Request):
    """``{session_id}`` of the session routes (as returned by the start)."""

    session_id: SessionId


class HeartbeatRequest(_Request):
    """``POST .../sessions/{session_id}/heartbeat``: where playback is now."""

    position_seconds: Number = Field(ge=0, le=MAX_DURATION_S)
    paused: Bool | None = Field(None, description="true pauses, false resumes; logged")


class StopRequest(_Request):
    """``POST .../sessions/{session_id}/stop``: the final position."""

    position_seconds: Number = Field(ge=0, le=MAX_DURATION_S)


class SessionResponse(BaseModel):
    """A playback session; ``state`` is playing, paused, ended or expired."""

    session_id: str
    user_id: str
    content_id: str
    device_id: str
    duration_seconds: float
    quality: str
    position_seconds: float
    state: Literal["playing", "paused", "ended", "expired"]
    completion_rate: float
    is_rewatch: bool
    started_at: float
    updated_at: float
    expires_at: float
    ended_at: float | None
    end_event: str | None
    resume_position_seconds: float | None = Field(
        None, description="start only: where the viewer left the title (0: from the start)")


class StopResponse(BaseModel):
    """A stopped session and the viewing event it logged (the same on a repeated stop)."""

    session: SessionResponse
    event_id: str
    event_type: Literal["playback_complete", "playback_abandon"]
    completion_rate: float
    already_stopped: bool


class ProgressRequest(_Request):
    """``POST /api/v1/playback/progress``: upsert where a viewer is in a title."""

    user_id: UserId
    content_id: ContentId
    platform_id: str | None = Field(None, min_length=1, max_length=64, pattern=NOT_BLANK)
    progress_seconds: Number = Field(ge=0, le=MAX_DURATION_S)
    duration_seconds: Number = Field(gt=0, le=MAX_DURATION_S)
    device_id: DeviceId
    event_id: EventId | None = Field(
        None, description="idempotency key of the logged event (a retry stores it once)")
    region: Region | None = None

    @model_validator(mode="after")
    def _within_duration(self) -> ProgressRequest:
        if self.progress_seconds > self.duration_seconds:
            raise ValueError(f"progress_seconds: {self.progress_seconds:g} is beyond "
                             f"duration_seconds {self.duration_seconds:g}")
        return self


class ProgressQuery(_Request):
    """``?user_id=&content_id=`` of ``GET /api/v1/playback/progress``."""

    user_id: UserId
    content_id: ContentId


class ProgressResponse(BaseModel):
    """Progress in one title: ``last_position`` is the resume position (seconds)."""

    user_id: str
    content_id: str
    platform_id: str | None
    device_id: str | None
    progress_seconds: float
    duration_seconds: float
    progress_percentage: float
    last_position: float
    times_completed: int
    updated_at: float
    completed: bool


class ContinueWatchingQuery(_Request):
    """``?user_id=&limit=`` of ``GET /api/v1/playback/continue-watching``."""

    user_id: UserId
    limit: int = Field(20, ge=1, le=100)


class ContinueWatchingResponse(BaseModel):
    """Titles started and not finished, most recently watched first."""

    user_id: str
    items: list[ProgressResponse]
    count: int


# --- event log --------------------------------------------------------------------------

class EventMetadata(BaseModel):
    """Free-form event details; the keys below are typed because they drive the profile."""

    model_config = ConfigDict(extra="allow")

    rating: Annotated[int, Field(ge=1, le=5), *INT] | None = Field(
        default=None, description="content_rating: 1-5")
    completion_rate: Number | None = Field(default=None, ge=0.0, le=1.0)
    position_seconds: Number | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    duration_seconds: Number | None = Field(default=None, gt=0, le=MAX_DURATION_S)
    is_rewatch: Bool = False
    dismissed: Bool = False


def _when(event_types: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"required": ["event_type"],
                   "properties": {"event_type": {"enum": event_types}}}, "then": then}


#: what an event type needs besides the common fields (``EventIn._consistent`` checks the
#: same): a content id; a rating's ``metadata.rating``; a progress or abandon event's
#: completion (``completion_rate``, or ``position_seconds`` with ``duration_seconds``)
_EVENT_RULES: dict[str, Any] = {"allOf": [
    _when(sorted(CONTENT_TYPES), {"required": ["content_id"],
                                  "properties": {"content_id": {"not": {"type": "null"}}}}),
    _when(["content_rating"], {"required": ["metadata"], "properties": {"metadata": {
        "required": ["rating"], "properties": {"rating": {"type": "integer"}}}}}),
    _when(["playback_progress", "playback_abandon"], {"required": ["metadata"], "properties": {
        "metadata": {"anyOf": [
            {"required": ["completion_rate"],
             "properties": {"completion_rate": {"type": "number"}}},
            {"required": ["position_seconds", "duration_seconds"],
             "properties": {"position_seconds": {"type": "number"},
                            "duration_seconds": {"type": "number"}}}]}}}),
]}


class EventIn(_Request):
    """One user-activity event (SPEC §5 fields); ``timestamp`` defaults to arrival time."""

    model_config = ConfigDict(json_schema_extra=_EVENT_RULES)

    event_id: EventId = Field(description="client-made unique id: a resent event is "
                                           "acknowledged again and stored once")
    user_id: UserId
    event_type: EventType
    content_id: ContentId | None = None
    timestamp: Timestamp | None = None
    metadata: EventMetadata = Field(default_factory=EventMetadata)
    device_id: DeviceId | None = None
    region: Region | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EventIn:
        if self.event_type in CONTENT_TYPES and self.content_id is None:
            raise ValueError(f"content_id: required for event_type {self.event_type}")
        meta = self.metadata_dict()
        if len(json.dumps(meta, separators=(",", ":"))) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata: at most {MAX_METADATA_BYTES} bytes of JSON")
        completion_of(self.event_type, meta)  # ValueError naming the missing metadata key
        return self

    def metadata_dict(self) -> dict[str, Any]:
        """``metadata`` as plain JSON data, unset typed keys left out."""
        return self.metadata.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def unix_time(self, default: float) -> float:
        """``timestamp`` in Unix seconds (naive times are UTC), else ``default``."""
        if self.timestamp is None:
            return default
        ts = self.timestamp if self.timestamp.tzinfo else self.timestamp.replace(tzinfo=UTC)
        return ts.timestamp()


class LogEventsRequest(_Request):
    """``POST /api/v1/events/log``: a batch of events, acknowledged once committed."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class LogEventsResponse(BaseModel):
    """Every id in ``accepted`` and ``duplicates`` is in the log (durably) when this comes."""

    status: Literal["stored"]
    accepted: list[str] = Field(description="ids new to the log")
    duplicates: list[str] = Field(description="ids the log already held: stored once")
    viewing_events: int = Field(description="new events that updated a profile")
    profile_errors: dict[str, str] = Field(
        description="user id -> why their profile was not updated (events still stored)")


class EventsQuery(_Request):
    """``?user_id=&after_seq=&limit=`` of ``GET /api/v1/events/log``."""

    user_id: UserId
    after_seq: int = Field(0, ge=0, le=2**63 - 1, description="cursor: the last seq already read")
    limit: int = Field(100, ge=1, le=1000)


class LoggedEvent(BaseModel):
    """A stored event: the SPEC fields plus storage order and arrival time."""

    seq: int
    event_id: str
    user_id: str
    event_type: str
    content_id: str | None
    timestamp: float
    metadata: dict[str, Any]
    device_id: str | None
    region: str | None
    received_at: float


class EventsResponse(BaseModel):
    """A page of a user's events in storage order; pass ``next_seq`` as ``after_seq``."""

    user_id: str
    events: list[LoggedEvent]
    next_seq: int


__all__ = [
    "MAX_BATCH", "ContinueWatchingQuery", "ContinueWatchingResponse", "EventIn",
    "EventMetadata", "EventType", "EventsQuery", "EventsResponse", "HeartbeatRequest",
    "LogEventsRequest", "LogEventsResponse", "LoggedEvent", "ProgressQuery", "ProgressRequest",
    "ProgressResponse", "SessionPath", "SessionResponse", "StartSessionRequest", "StopRequest",
    "StopResponse",
]
