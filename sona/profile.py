"""User profiles: the SONA preference vector and genre affinities (SPEC §2.1), persisted.

A viewing event counts when ``completion_rate >= 0.3``. Its engagement weight is
``c = 0.5 + (completion - 0.3) / 1.4``, ``w = 0.4·c`` plus ``0.3·(rating - 1)/4`` when rated
(else ``0.15·c``), ``+0.2`` for a rewatch and ``-0.5`` when dismissed, clamped to [0, 1].
Older events decay by ``0.95 ** (whole_days_since / 30)``. The preference vector is the
weight-normalised sum of the watched items' content vectors, L2-normalised (the zero vector
when nothing qualifies). Genre affinities move online: ``new = 0.9·old + 0.1·engagement``
with unknown genres starting at 0.5.

The SPEC recomputes the vector on every 5th interaction; the serving API recomputes it on
every update instead (the issue asks for the vector to change at once), which is cheap:
one ``(n_events, D)`` weighted sum.

:class:`ProfileStore` keeps events and profiles in SQLite (or any SQLAlchemy URL).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine

log = logging.getLogger(__name__)

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """Constants of the preference-vector and affinity updates (SPEC §2.1 values)."""

    # events with a completion rate below this are ignored (fraction 0-1)
    min_completion: float = 0.3
    # per-period decay factor of an event's weight (unitless)
    decay_base: float = 0.95
    # decay period in whole days: weight *= decay_base ** (days / period)
    decay_period_days: float = 30.0
    # online genre-affinity learning rate: new = (1 - rate)·old + rate·engagement
    affinity_rate: float = 0.1
    # affinity a genre starts from before its first event (0-1)
    affinity_prior: float = 0.5


@dataclass(frozen=True, slots=True)
class ViewingEvent:
    """One SONA viewing event (SPEC §1 ViewingEvent); ``timestamp`` in Unix seconds."""

    content_id: Any
    timestamp: float
    completion_rate: float
    rating: int | None = None
    is_rewatch: bool = False
    dismissed: bool = False


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What SONA knows about a user (SPEC §1 UserProfile, the parts serving uses)."""

    user_id: str
    preference_vector: NDArray[np.float32]  # (D,), L2 norm 1 or all zeros
    genre_affinities: dict[str, float] = field(default_factory=dict)
    signup_genres: tuple[str, ...] = ()
    interaction_count: int = 0  # stored events (qualifying or not)
    last_update_time: float = 0.0  # Unix seconds


def engagement_weight(event: ViewingEvent, *, include_dismissal: bool = True) -> float:
    """SPEC §2.1 engagement weight of one event, clamped to [0, 1].

    ``include_dismissal=False`` gives the LoRA training label (SPEC §2.2).
    """
    c = 0.5 + (float(event.completion_rate) - 0.3) / 1.4
    w = 0.4 * c
    w += 0.3 * (event.rating - 1) / 4.0 if event.rating is not None else 0.15 * c
    if event.is_rewatch:
        w += 0.2
    if event.dismissed and include_dismissal:
        w -= 0.5
    return min(1.0, max(0.0, w))


def decay_weight(timestamp: float, now: float, config: ProfileConfig = ProfileConfig()) -> float:
    """``decay_base ** (whole_days_since / period)``; events in the future count as today."""
    days = max(0, math.floor((now - float(timestamp)) / _DAY_S))
    return float(config.decay_base ** (days / config.decay_period_days))


def engagement_weights(completion: NDArray[np.floating], rating: NDArray[np.floating],
                       is_rewatch: NDArray[np.bool_], dismissed: NDArray[np.bool_], *,
                       include_dismissal: bool = True) -> NDArray[np.float64]:
    """Vectorised :func:`engagement_weight`; ``rating`` is NaN where an event is unrated."""
    c = 0.5 + (np.asarray(completion, np.float64) - 0.3) / 1.4
    r = np.asarray(rating, np.float64)
    w = 0.4 * c + np.where(np.isnan(r), 0.15 * c, 0.3 * (r - 1.0) / 4.0)
    w = w + 0.2 * np.asarray(is_rewatch, bool)
    if include_dismissal:
        w = w - 0.5 * np.asarray(dismissed, bool)
    return np.clip(w, 0.0, 1.0)


def event_weights(events: Sequence[ViewingEvent], *, now: float,
                  config: ProfileConfig = ProfileConfig()) -> NDArray[np.float64]:
    """``decay · engagement`` per event; 0 for events below ``min_completion``."""
    if not events:
        return np.zeros(0)
    completion = np.array([e.completion_rate for e in events], np.float64)
    rating = np.array([np.nan if e.rating is None else e.rating for e in events], np.float64)
    eng = engagement_weights(completion, rating, np.array([e.is_rewatch for e in events]),
                             np.array([e.dismissed for e in events]))
    ts = np.array([e.timestamp for e in events], np.float64)
    days = np.maximum(0.0, np.floor((now - ts) / _DAY_S))
    decay = config.decay_base ** (days / config.decay_period_days)
    return np.where(completion >= config.min_completion, decay * eng, 0.0)


def weighted_preference(item_rows: NDArray[np.int64], weights: NDArray[np.float64],
                        item_vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """``L2norm(Σ w_i / Σ w · x_i)`` over rows ``>= 0``; zeros when the weights sum to 0."""
    rows = np.asarray(item_rows, np.int64)
    w = np.asarray(weights, np.float64)
    keep = (rows >= 0) & (w > 0)
    dim = item_vectors.shape[1]
    total = float(w[keep].sum())
    if total <= 0.0:
        return np.zeros(dim, dtype=np.float32)
    vec = ((w[keep] / total).astype(np.float32) @ item_vectors[rows[keep]]).astype(np.float64)
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else np.zeros(dim, dtype=np.float32)


def preference_vector(
    events: Sequence[ViewingEvent],
    item_rows: Sequence[int] | NDArray[np.int64],
    item_vectors: NDArray[np.float32],
    *,
    now: float,
    config: ProfileConfig = ProfileConfig(),
) -> NDArray[np.float32]:
    """The L2-normalised, decay- and engagement-weighted mean content vector.

    Args:
        events: the user's events (any order).
        item_rows: row of ``item_vectors`` for each event's content (-1: no vector; skipped).
        item_vectors: content embeddings, shape ``(n_items, D)``.
        now: reference time for the decay (Unix seconds).

    Returns:
        float32 ``(D,)``: unit norm, or zeros when no event qualifies or all weights are 0.
    """
    if len(events) != len(item_rows):
        raise ValueError(f"{len(events)} events but {len(item_rows)} item rows")
    return weighted_preference(np.asarray(item_rows, np.int64).reshape(-1),
                               event_weights(events, now=now, config=config), item_vectors)


def update_genre_affinities(
    affinities: Mapping[str, float],
    events: Iterable[ViewingEvent],
    item_genres: Iterable[Sequence[str]],
    config: ProfileConfig = ProfileConfig(),
) -> dict[str, float]:
    """Apply ``new = (1 - rate)·old + rate·engagement`` per genre of each qualifying event."""
    out = dict(affinities)
    rate = config.affinity_rate
    for ev, genres in zip(events, item_genres, strict=True):
        if ev.completion_rate < config.min_completion:
            continue
        eng = engagement_weight(ev)
        for genre in genres:
            old = out.get(genre, config.affinity_prior)
            out[genre] = (1.0 - rate) * old + rate * eng
    return out


# --- persistence ------------------------------------------------------------------------

class _Base(DeclarativeBase):
    pass


class _EventRow(_Base):
    __tablename__ = "viewing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    content_id: Mapped[str] = mapped_column(String(128))
    timestamp: Mapped[float] = mapped_column(Float)
    completion_rate: Mapped[float] = mapped_column(Float)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_rewatch: Mapped[bool] = mapped_column(Boolean, default=False)
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[float] = mapped_column(Float)


class _ProfileRow(_Base):
    __tablename__ = "user_profiles"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    preference_vector: Mapped[bytes] = mapped_column(LargeBinary)
    genre_affinities: Mapped[str] = mapped_column(Text, default="{}")
    signup_genres: Mapped[str] = mapped_column(Text, default="[]")
    interaction_count: Mapped[int] = mapped_column(Integer, default=0)
    last_update_time: Mapped[float] = mapped_column(Float, default=0.0)


class ProfileStore:
    """Viewing events and user profiles in a relational store (SQLite by default).

    A user with stored events always has a profile row (see :meth:`add_events`).

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/path/sona.db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def add_events(self, user_id: str, events: Sequence[ViewingEvent]) -> int:
        """Append ``events`` for ``user_id``; returns the user's stored event count after.

        Keeps the invariant "every user with events has a profile row" (created empty, with
        ``interaction_count``), so readers can skip the event query for users without one.
        """
        now = time.time()
        with Session(self.engine) as session, session.begin():
            session.add_all([
                _EventRow(user_id=str(user_id), content_id=str(ev.content_id),
                          timestamp=float(ev.timestamp), completion_rate=float(ev.completion_rate),
                          rating=ev.rating, is_rewatch=bool(ev.is_rewatch),
                          dismissed=bool(ev.dismissed), received_at=now)
                for ev in events
            ])
            session.flush()
            count = int(session.scalar(select(func.count()).where(
                _EventRow.user_id == str(user_id))) or 0)
            row = session.get(_ProfileRow, str(user_id))
            if row is None:
                session.add(_ProfileRow(user_id=str(user_id), dim=0, preference_vector=b"",
                                        genre_affinities="{}", signup_genres="[]",
                                        interaction_count=count, last_update_time=now))
            else:
                row.interaction_count = count
            return count

    def events(self, user_id: str, *, limit: int | None = None) -> list[ViewingEvent]:
        """The user's events, oldest first (the most recent ``limit`` when given)."""
        query = select(_EventRow).where(_EventRow.user_id == str(user_id))
        if limit is not None:
            query = query.order_by(_EventRow.id.desc()).limit(limit)
        with Session(self.engine) as session:
            rows = list(session.scalars(query))
        rows.sort(key=lambda r: r.id)
        return [ViewingEvent(r.content_id, r.timestamp, r.completion_rate, r.rating,
                             r.is_rewatch, r.dismissed) for r in rows]

    def event_count(self, user_id: str) -> int:
        """Number of stored events of ``user_id``."""
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).where(
                _EventRow.user_id == str(user_id))) or 0)

    def get(self, user_id: str) -> UserProfile | None:
        """The stored profile, or None for a user never updated."""
        with Session(self.engine) as session:
            row = session.get(_ProfileRow, str(user_id))
            if row is None:
                return None
            vec = np.frombuffer(row.preference_vector, dtype=np.float32).copy()
            return UserProfile(row.user_id, vec, json.loads(row.genre_affinities),
                               tuple(json.loads(row.signup_genres)), row.interaction_count,
                               row.last_update_time)

    def save(self, profile: UserProfile) -> None:
        """Insert or replace ``profile``."""
        vec = np.ascontiguousarray(profile.preference_vector, dtype=np.float32)
        with Session(self.engine) as session, session.begin():
            session.merge(_ProfileRow(
                user_id=str(profile.user_id), dim=int(vec.shape[0]),
                preference_vector=vec.tobytes(),
                genre_affinities=json.dumps(profile.genre_affinities),
                signup_genres=json.dumps(list(profile.signup_genres)),
                interaction_count=int(profile.interaction_count),
                last_update_time=float(profile.last_update_time)))

    def set_signup_genres(self, user_id: str, genres: Sequence[str], dim: int) -> UserProfile:
        """Record a user's signup genres (creating an empty profile if needed)."""
        current = self.get(user_id) or UserProfile(str(user_id), np.zeros(dim, np.float32))
        updated = replace(current, signup_genres=tuple(genres))
        self.save(updated)
        return updated


__all__ = [
    "ProfileConfig", "ProfileStore", "UserProfile", "ViewingEvent", "decay_weight",
    "engagement_weight", "engagement_weights", "event_weights", "preference_vector",
    "update_genre_affinities", "weighted_preference",
]
