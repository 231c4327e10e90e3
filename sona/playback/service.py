"""Playback: sessions, progress, resume positions and continue watching (SPEC §5).

A session is started for ``(user, content, device)`` with the title's duration, moved along
by heartbeats (position, optionally paused) and stopped with the final position. Every
heartbeat and stop also moves the title's progress (so an app that crashes mid-film still
resumes where it was); sessions expire ``session_ttl_s`` (24 h) after their last heartbeat.

What playback tells the recommender goes through the one event path
(:class:`~sona.events.EventRecorder`: append to the event log, then the profile):

* start -> ``playback_start``; a heartbeat that pauses or resumes -> ``playback_pause`` /
  ``playback_resume`` (logged only);
* stop -> ``playback_complete`` when ``position / duration >= completion_threshold`` (0.95),
  else ``playback_abandon``, with the completion rate and ``is_rewatch`` (the title had
  been finished before the session started): a SONA viewing event;
* a progress upsert (``POST /api/v1/playback/progress``) -> ``playback_progress`` with
  ``completion_rate = progress / duration`` and ``is_rewatch`` when the title had been
  finished before and this is not just another report of that finished viewing.

Start and stop events have ids derived from the session id, so a retried stop (lost
acknowledgement) stores and counts nothing twice; a progress upsert may carry the client's
own ``event_id`` for the same reason.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sona.errors import RequestError
from sona.events import EventRecorder, LogEvent
from sona.playback.store import PlaybackSession, PlaybackStore, Progress

UnknownContent = Callable[[Sequence[str]], list[str]]
"""Returns the ids (of those given) that are not in the item space."""


class PlaybackError(RequestError):
    """A playback request that cannot be served: HTTP ``status``, ``code``, bad ``fields``."""


@dataclass(frozen=True, slots=True)
class PlaybackConfig:
    """Settings of playback (the ``playback`` block of the serving YAML)."""

    # SQLAlchemy URL; None: playback.db next to the serving database
    url: str | None = None
    # a session expires this long after its last heartbeat (seconds; SPEC: 24 h)
    session_ttl_s: float = 86_400.0
    # a title counts as finished at this completion (0-1; SPEC: 0.95)
    completion_threshold: float = 0.95


@dataclass(frozen=True, slots=True)
class StopResult:
    """A stopped session and the viewing event it produced."""

    session: PlaybackSession
    event_id: str
    event_type: str  # playback_complete or playback_abandon
    already_stopped: bool  # a repeated stop: nothing new was recorded


class PlaybackService:
    """Sessions and progress over a :class:`PlaybackStore`, events through a recorder.

    Args:
        store: sessions and progress.
        recorder: the event path (log + profile).
        unknown_content: item-space check; ids it returns are answered with 404.
        config: TTL and completion threshold.
        clock: Unix seconds (tests pass their own).
    """

    def __init__(self, store: PlaybackStore, recorder: EventRecorder, *,
                 unknown_content: UnknownContent, config: PlaybackConfig = PlaybackConfig(),
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.recorder = recorder
        self.unknown_content = unknown_content
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()  # session and progress read-modify-writes

    # --- sessions --------------------------------------------------------------------------

    def start(self, user_id: str, content_id: str, *, device_id: str, duration_seconds: float,
              quality: str = "auto", region: str | None = None) -> PlaybackSession:
        """Open a session; logs ``playback_start``.

        Raises:
            PlaybackError: 404 when ``content_id`` is not in the item space.
        """
        self._check_content(content_id)
        now = self.clock()
        with self._lock:
            before = self.store.progress(user_id, content_id)
            session = PlaybackSession(
                uuid.uuid4().hex, user_id, content_id, device_id, float(duration_seconds),
                quality, 0.0, "playing", before is not None and before.times_completed > 0,
                now, now, now + self.config.session_ttl_s)
            self.recorder.record([self._event(session, "playback_start", now, region=region,
                                              event_id=f"playback:{session.session_id}:start")])
            self.store.put_session(session)
        return session

    def heartbeat(self, session_id: str, position_seconds: float, *,
                  paused: bool | None = None) -> PlaybackSession:
        """Move an open session to ``position_seconds``; a change of ``paused`` is logged.

        Raises:
            PlaybackError: 404 unknown session, 410 expired, 409 already stopped.
        """
        now = self.clock()
        with self._lock:
            session = self._open(session_id, now)
            state = session.state if paused is None else ("paused" if paused else "playing")
            moved = replace(session, position_seconds=min(float(position_seconds),
                                                          session.duration_seconds),
                            state=state, updated_at=now,
                            expires_at=now + self.config.session_ttl_s)
            if state != session.state:
                kind = "playback_pause" if state == "paused" else "playback_resume"
                self.recorder.record([self._event(moved, kind, now)])
            self._move_progress(moved, now)
            self.store.put_session(moved)
        return moved

    def stop(self, session_id: str, position_seconds: float) -> StopResult:
        """End a session at its final position; logs the viewing event (see module doc).

        A second stop of the same session returns the first outcome and records nothing.

        Raises:
            PlaybackError: 404 unknown session, 410 expired.
        """
        now = self.clock()
        with self._lock:
            session = self.store.session(session_id)
            if session is not None and session.state == "ended":
                assert session.end_event is not None
                return StopResult(session, f"playback:{session_id}:end", session.end_event,
                                  True)
            session = self._open(session_id, now)
            ended = replace(session, position_seconds=min(float(position_seconds),
                                                          session.duration_seconds),
                            state="ended", updated_at=now, ended_at=now)
            finished = ended.completion_rate >= self.config.completion_threshold
            kind = "playback_complete" if finished else "playback_abandon"
            event_id = f"playback:{session_id}:end"
            # the event first: a crash before the session row is written leaves the session
            # open, and the client's retried stop then finds the event already stored
            self.recorder.record([self._event(ended, kind, now, event_id=event_id, metadata={
                "completion_rate": ended.completion_rate, "is_rewatch": ended.is_rewatch,
                "position_seconds": ended.position_seconds,
                "duration_seconds": ended.duration_seconds})])
            self._move_progress(ended, now)
            ended = replace(ended, end_event=kind)
            self.store.put_session(ended)
        return StopResult(ended, event_id, kind, False)

    def session(self, session_id: str) -> PlaybackSession:
        """One session (any state).

        Raises:
            PlaybackError: 404 unknown session.
        """
        session = self.store.session(session_id)
        if session is None:
            raise PlaybackError(404, "not_found", f"unknown session_id {session_id!r}",
                                ["session_id"])
        return session

    def purge_expired(self, *, keep_s: float = 0.0) -> int:
        """Delete sessions expired or ended more than ``keep_s`` ago; returns how many."""
        return self.store.purge_sessions(self.clock() - keep_s)

    # --- progress --------------------------------------------------------------------------

    def upsert_progress(self, user_id: str, content_id: str, *, progress_seconds: float,
                        duration_seconds: float, device_id: str | None = None,
                        platform_id: str | None = None, event_id: str | None = None,
                        region: str | None = None) -> Progress:
        """Record where the user is in a title; logs ``playback_progress`` (a viewing event).

        Raises:
            PlaybackError: 404 when ``content_id`` is not in the item space.
        """
        self._check_content(content_id)
        now = self.clock()
        with self._lock:
            before = self.store.progress(user_id, content_id)
            after = self._next_progress(before, user_id, content_id, float(progress_seconds),
                                        float(duration_seconds), now, device_id, platform_id)
            was_done = before is not None and \
                before.completion >= self.config.completion_threshold
            now_done = after.completion >= self.config.completion_threshold
            rewatch = before is not None and before.times_completed > 0 and \
                not (was_done and now_done)
            self.recorder.record([LogEvent(
                event_id or f"progress:{uuid.uuid4().hex}", user_id, "playback_progress", now,
                content_id, {"completion_rate": after.completion, "is_rewatch": rewatch,
                             "position_seconds": after.progress_seconds,
                             "duration_seconds": after.duration_seconds,
                             **({"platform_id": platform_id} if platform_id else {})},
                device_id, region)])
            self.store.put_progress(after)
        return after

    def progress(self, user_id: str, content_id: str) -> Progress:
        """The user's progress in a title.

        Raises:
            PlaybackError: 404 when the user has no progress for it.
        """
        found = self.store.progress(user_id, content_id)
        if found is None:
            raise PlaybackError(404, "not_found", f"no progress of user {user_id!r} for "
                                f"content_id {content_id!r}", ["content_id"])
        return found

    def continue_watching(self, user_id: str, limit: int = 20) -> list[Progress]:
        """Titles started and not finished, most recently watched first."""
        return self.store.in_progress(user_id, below=self.config.completion_threshold,
                                      limit=limit)

    # --- helpers ---------------------------------------------------------------------------

    def _check_content(self, content_id: str) -> None:
        if self.unknown_content([content_id]):
            raise PlaybackError(404, "not_found", f"unknown content_id {content_id!r}: not "
                                "in the catalog nor the served model", ["content_id"])

    def _open(self, session_id: str, now: float) -> PlaybackSession:
        session = self.session(session_id)
        if session.state == "ended":
            raise PlaybackError(409, "session_ended", f"session {session_id!r} was stopped",
                                ["session_id"])
        if now >= session.expires_at:
            raise PlaybackError(410, "session_expired", f"session {session_id!r} expired "
                                f"(no heartbeat for {self.config.session_ttl_s:g} s)",
                                ["session_id"])
        return session

    def _next_progress(self, before: Progress | None, user_id: str, content_id: str,
                       position: float, duration: float, now: float, device_id: str | None,
                       platform_id: str | None) -> Progress:
        completion = min(1.0, max(0.0, position / duration))
        was_done = before is not None and before.completion >= self.config.completion_threshold
        finished_now = completion >= self.config.completion_threshold and not was_done
        times = (before.times_completed if before is not None else 0) + int(finished_now)
        return Progress(user_id, content_id, min(position, duration), duration, completion,
                        times, now, platform_id or (before.platform_id if before else None),
                        device_id or (before.device_id if before else None))

    def _move_progress(self, session: PlaybackSession, now: float) -> None:
        before = self.store.progress(session.user_id, session.content_id)
        self.store.put_progress(self._next_progress(
            before, session.user_id, session.content_id, session.position_seconds,
            session.duration_seconds, now, session.device_id, None))

    def _event(self, session: PlaybackSession, kind: str, now: float, *,
               event_id: str | None = None, metadata: dict[str, Any] | None = None,
               region: str | None = None) -> LogEvent:
        meta = {"session_id": session.session_id, "quality": session.quality,
                "position_seconds": session.position_seconds,
                "duration_seconds": session.duration_seconds, **(metadata or {})}
        return LogEvent(event_id or f"playback:{session.session_id}:{uuid.uuid4().hex}",
                        session.user_id, kind, now, session.content_id, meta,
                        session.device_id, region)


__all__ = ["PlaybackConfig", "PlaybackError", "PlaybackService", "StopResult",
           "UnknownContent"]
