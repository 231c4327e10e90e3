"""Handlers of the playback and event-log routes (plain Python; HTTP in ``playback_http``).

:func:`build_playback` wires, for the serving process, the event log (``events.db`` next
to the serving database unless ``events.url`` names one), the :class:`EventRecorder` whose
sink is the profile update of ``POST /api/v1/profile/update`` (:func:`record_signals`, the
path sync signals take too) and the :class:`PlaybackService` (``playback.db`` unless
``playback.url``). Content ids are checked against the item space the service knows: the
loaded model's item index first, then the catalog store, so a catalog-only title can be
played (its events are logged; the profile takes the titles the model knows).

Failures keep their meaning over HTTP: a :class:`PlaybackError` becomes an
:class:`ApiError` with its status (404 unknown title or session, 409 stopped session, 410
expired session) and the offending ``fields``; unknown content ids in an event batch are
one 404 naming them all, before anything is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sona.db import sqlite_url
from sona.errors import UnknownIdError
from sona.events import EventLog, EventRecorder, LogEvent
from sona.playback import PlaybackService, PlaybackStore, Progress
from sona.playback.store import PlaybackSession
from sona.serving.errors import ApiError, service_call
from sona.serving.playback_schemas import (
    ContinueWatchingQuery,
    ContinueWatchingResponse,
    EventsQuery,
    EventsResponse,
    HeartbeatRequest,
    LogEventsRequest,
    LogEventsResponse,
    ProgressQuery,
    ProgressRequest,
    ProgressResponse,
    SessionResponse,
    StartSessionRequest,
    StopRequest,
    StopResponse,
)
from sona.serving.sync_http import record_signals

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

T = TypeVar("T")


def unknown_content(app: SonaApp, content_ids: Sequence[str]) -> list[str]:
    """The ids (of ``content_ids``) neither the loaded model nor the catalog knows."""
    ids = list(dict.fromkeys(str(c) for c in content_ids))
    if app.store.ready:
        idx = app.store.current.items.numbers(ids, missing="negative")
        ids = [c for c, i in zip(ids, idx, strict=True) if i < 0]
    if not ids:
        return []
    try:
        app.catalog.store.get_many(ids)
    except UnknownIdError as exc:
        return [str(i) for i in exc.ids]
    return []


#: a playback call with its PlaybackError as the matching ApiError
playback_call = service_call


class PlaybackHandler:
    """The routes' logic over the playback service and the event recorder.

    Args:
        playback: sessions and progress.
        recorder: the event path (log, then profiles).
        unknown: item-space check (ids it returns are 404).
    """

    def __init__(self, playback: PlaybackService, recorder: EventRecorder,
                 unknown: Callable[[Sequence[str]], list[str]]) -> None:
        self.playback = playback
        self.recorder = recorder
        self.unknown = unknown

    @property
    def log(self) -> EventLog:
        """The event log."""
        return self.recorder.log

    def close(self) -> None:
        """Release the stores' connections."""
        self.playback.store.close()
        self.recorder.log.close()

    # --- playback ---------------------------------------------------------------------------

    def _session(self, session: PlaybackSession,
                 resume: float | None = None) -> SessionResponse:
        return SessionResponse.model_validate({**session.to_dict(now=self.playback.clock()),
                                               "resume_position_seconds": resume})

    def _progress(self, progress: Progress) -> ProgressResponse:
        done = progress.completion >= self.playback.config.completion_threshold
        return ProgressResponse.model_validate({**progress.to_dict(), "completed": done})

    def start(self, req: StartSessionRequest) -> SessionResponse:
        """Start a session; the response says where to resume (0 for a finished title)."""
        def call() -> SessionResponse:
            session = self.playback.start(req.user_id, req.content_id, device_id=req.device_id,
                                          duration_seconds=req.duration_seconds,
                                          quality=req.quality, region=req.region)
            found = self.playback.store.progress(req.user_id, req.content_id)
            done = found is None or \
                found.completion >= self.playback.config.completion_threshold
            return self._session(session, 0.0 if done or found is None
                                 else found.progress_seconds)
        return playback_call(call)

    def heartbeat(self, session_id: str, req: HeartbeatRequest) -> SessionResponse:
        """Move a session along (and its title's progress)."""
        return playback_call(lambda: self._session(self.playback.heartbeat(
            session_id, req.position_seconds, paused=req.paused)))

    def stop(self, session_id: str, req: StopRequest) -> StopResponse:
        """Stop a session; logs playback_complete or playback_abandon."""
        result = playback_call(lambda: self.playback.stop(session_id, req.position_seconds))
        return StopResponse(session=self._session(result.session), event_id=result.event_id,
                            event_type=result.event_type,  # type: ignore[arg-type]
                            completion_rate=result.session.completion_rate,
                            already_stopped=result.already_stopped)

    def session(self, session_id: str) -> SessionResponse:
        """One session."""
        return playback_call(lambda: self._session(self.playback.session(session_id)))

    def upsert_progress(self, req: ProgressRequest) -> ProgressResponse:
        """Upsert progress; logs playback_progress."""
        return playback_call(lambda: self._progress(self.playback.upsert_progress(
            req.user_id, req.content_id, progress_seconds=req.progress_seconds,
            duration_seconds=req.duration_seconds, device_id=req.device_id,
            platform_id=req.platform_id, event_id=req.event_id, region=req.region)))

    def progress(self, query: ProgressQuery) -> ProgressResponse:
        """The progress of one title."""
        return playback_call(lambda: self._progress(
            self.playback.progress(query.user_id, query.content_id)))

    def continue_watching(self, query: ContinueWatchingQuery) -> ContinueWatchingResponse:
        """Titles in progress, most recent first."""
        items = [self._progress(p) for p in
                 self.playback.continue_watching(query.user_id, query.limit)]
        return ContinueWatchingResponse(user_id=query.user_id, items=items, count=len(items))

    # --- event log --------------------------------------------------------------------------

    def log_events(self, req: LogEventsRequest) -> LogEventsResponse:
        """Append a batch (after checking every content id); answers once committed.

        Raises:
            ApiError: 404 naming the content ids outside the item space (nothing stored).
        """
        named = [e.content_id for e in req.events if e.content_id is not None]
        missing = set(self.unknown(named)) if named else set()
        if missing:
            where = [f"events.{i}.content_id" for i, e in enumerate(req.events)
                     if e.content_id in missing]
            shown = sorted(missing)[:10]
            raise ApiError(404, "not_found", f"unknown content id(s) {shown}: not in the "
                           "catalog nor the served model; nothing was stored",
                           fields=where[:10], content_ids=shown)
        now = time.time()
        result = self.recorder.record([LogEvent(
            e.event_id, e.user_id, e.event_type, e.unix_time(now), e.content_id,
            e.metadata_dict(), e.device_id, e.region) for e in req.events])
        return LogEventsResponse(status="stored", accepted=result.stored,
                                 duplicates=result.duplicates,
                                 viewing_events=result.viewing_events,
                                 profile_errors=result.profile_errors)

    def events(self, query: EventsQuery) -> EventsResponse:
        """A page of one user's events in storage order."""
        page = self.log.read(after_seq=query.after_seq, limit=query.limit,
                             user_id=query.user_id)
        return EventsResponse.model_validate({
            "user_id": query.user_id, "events": [s.to_dict() for s in page],
            "next_seq": page[-1].seq if page else query.after_seq})


def build_playback(app: SonaApp) -> PlaybackHandler:
    """The playback handler of ``app``: event log, recorder, playback service (see module)."""
    folder = Path(app.config.database).resolve().parent
    log = EventLog(app.config.events.url or sqlite_url(folder / "events.db"))
    recorder = EventRecorder(log, lambda user_id, events: record_signals(app, user_id, events),
                             app.config.events.rules)
    store = PlaybackStore(app.config.playback.url or sqlite_url(folder / "playback.db"))

    def unknown(ids: Sequence[str]) -> list[str]:
        return unknown_content(app, ids)

    service = PlaybackService(store, recorder, unknown_content=unknown,
                              config=app.config.playback)
    return PlaybackHandler(service, recorder, unknown)


__all__ = ["PlaybackHandler", "build_playback", "playback_call", "unknown_content"]
