"""Persistence of playback: sessions and per-title progress (SQLAlchemy).

The SPEC's original kept sessions in Redis with a 24 h TTL; here a session row carries its
``expires_at`` (refreshed by every heartbeat) and the service treats a session past it as
expired. Progress is one row per ``(user_id, content_id)``: the resume position, the
completion it stands for and how many times the title was finished (the rewatch rule).
Engines come from :func:`sona.db.make_engine` with ``durable=True``, as for the event log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine


class _Base(DeclarativeBase):
    pass


class _SessionRow(_Base):
    __tablename__ = "playback_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    content_id: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str] = mapped_column(String(64))
    duration_seconds: Mapped[float] = mapped_column(Float)
    quality: Mapped[str] = mapped_column(String(8))
    position_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16))  # playing, paused, ended
    is_rewatch: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_event: Mapped[str | None] = mapped_column(String(32), nullable=True)


class _ProgressRow(_Base):
    __tablename__ = "playback_progress"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    content_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    progress_seconds: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float)
    completion: Mapped[float] = mapped_column(Float)
    times_completed: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float, index=True)


@dataclass(frozen=True, slots=True)
class PlaybackSession:
    """One playback session (SPEC §5 session fields); times in Unix seconds."""

    session_id: str
    user_id: str
    content_id: str
    device_id: str
    duration_seconds: float
    quality: str
    position_seconds: float
    state: str  # playing, paused, ended (expired is computed by the service)
    is_rewatch: bool  # the title had been finished before this session started
    started_at: float
    updated_at: float
    expires_at: float
    ended_at: float | None = None
    end_event: str | None = None  # playback_complete or playback_abandon once ended

    @property
    def completion_rate(self) -> float:
        """``position / duration``, clipped to [0, 1]."""
        return min(1.0, max(0.0, self.position_seconds / self.duration_seconds))

    def to_dict(self, *, now: float) -> dict[str, Any]:
        """JSON form; ``state`` reads ``expired`` for an open session past ``expires_at``."""
        state = "expired" if self.state != "ended" and now >= self.expires_at else self.state
        return {"session_id": self.session_id, "user_id": self.user_id,
                "content_id": self.content_id, "device_id": self.device_id,
                "duration_seconds": self.duration_seconds, "quality": self.quality,
                "position_seconds": self.position_seconds, "state": state,
                "completion_rate": self.completion_rate, "is_rewatch": self.is_rewatch,
                "started_at": self.started_at, "updated_at": self.updated_at,
                "expires_at": self.expires_at, "ended_at": self.ended_at,
                "end_event": self.end_event}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a user is in a title: the resume position and how far that is."""

    user_id: str
    content_id: str
    progress_seconds: float
    duration_seconds: float
    completion: float  # progress / duration, 0-1
    times_completed: int
    updated_at: float
    platform_id: str | None = None
    device_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``progress_percentage`` (0-100) and ``last_position`` (resume, s)."""
        return {"user_id": self.user_id, "content_id": self.content_id,
                "platform_id": self.platform_id, "device_id": self.device_id,
                "progress_seconds": self.progress_seconds,
                "duration_seconds": self.duration_seconds,
                "progress_percentage": round(100.0 * self.completion, 2),
                "last_position": self.progress_seconds,
                "times_completed": self.times_completed, "updated_at": self.updated_at}


def _session(row: _SessionRow) -> PlaybackSession:
    return PlaybackSession(row.session_id, row.user_id, row.content_id, row.device_id,
                           row.duration_seconds, row.quality, row.position_seconds, row.state,
                           row.is_rewatch, row.started_at, row.updated_at, row.expires_at,
                           row.ended_at, row.end_event)


def _progress(row: _ProgressRow) -> Progress:
    return Progress(row.user_id, row.content_id, row.progress_seconds, row.duration_seconds,
                    row.completion, row.times_completed, row.updated_at, row.platform_id,
                    row.device_id)


class PlaybackStore:
    """Sessions and progress in any SQLAlchemy database.

    Args:
        url: SQLAlchemy URL (``sqlite:////abs/playback.db``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url, durable=True)
        _Base.metadata.create_all(self.engine)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def put_session(self, session: PlaybackSession) -> PlaybackSession:
        """Insert or replace a session."""
        with Session(self.engine) as sess, sess.begin():
            sess.merge(_SessionRow(
                session_id=session.session_id, user_id=session.user_id,
                content_id=session.content_id, device_id=session.device_id,
                duration_seconds=session.duration_seconds, quality=session.quality,
                position_seconds=session.position_seconds, state=session.state,
                is_rewatch=session.is_rewatch, started_at=session.started_at,
                updated_at=session.updated_at, expires_at=session.expires_at,
                ended_at=session.ended_at, end_event=session.end_event))
        return session

    def session(self, session_id: str) -> PlaybackSession | None:
        """One session, or None."""
        with Session(self.engine) as sess:
            row = sess.get(_SessionRow, session_id)
            return None if row is None else _session(row)

    def purge_sessions(self, before: float) -> int:
        """Delete sessions that expired or ended before ``before``; returns how many."""
        with Session(self.engine) as sess, sess.begin():
            result = sess.execute(delete(_SessionRow).where(
                (_SessionRow.expires_at <= before) | (_SessionRow.ended_at <= before)))
            return int(getattr(result, "rowcount", 0) or 0)

    def put_progress(self, progress: Progress) -> Progress:
        """Insert or replace the progress of ``(user_id, content_id)``."""
        with Session(self.engine) as sess, sess.begin():
            sess.merge(_ProgressRow(
                user_id=progress.user_id, content_id=progress.content_id,
                platform_id=progress.platform_id, device_id=progress.device_id,
                progress_seconds=progress.progress_seconds,
                duration_seconds=progress.duration_seconds, completion=progress.completion,
                times_completed=progress.times_completed, updated_at=progress.updated_at))
        return progress

    def progress(self, user_id: str, content_id: str) -> Progress | None:
        """The progress of one title, or None."""
        with Session(self.engine) as sess:
            row = sess.get(_ProgressRow, (user_id, content_id))
            return None if row is None else _progress(row)

    def in_progress(self, user_id: str, *, below: float, limit: int) -> list[Progress]:
        """Titles started (position > 0) and below completion ``below``, newest first."""
        query = (select(_ProgressRow)
                 .where(_ProgressRow.user_id == user_id, _ProgressRow.completion < below,
                        _ProgressRow.progress_seconds > 0)
                 .order_by(_ProgressRow.updated_at.desc(), _ProgressRow.content_id)
                 .limit(limit))
        with Session(self.engine) as sess:
            return [_progress(r) for r in sess.scalars(query)]

    def purge_progress(self, before: float) -> int:
        """Delete progress not updated since ``before`` (stale-progress cleanup)."""
        with Session(self.engine) as sess, sess.begin():
            result = sess.execute(delete(_ProgressRow).where(_ProgressRow.updated_at < before))
            return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["PlaybackSession", "PlaybackStore", "Progress"]
