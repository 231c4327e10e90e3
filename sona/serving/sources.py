"""Candidate sources of the hybrid recommender and the explicit cold-start fallback.

A :class:`CandidateSource` scores every item for a batch of users and says for which users
it applies; the hybrid ranker blends the applicable ones with per-source weights (SPEC
§2.7: collaborative 0.35, content 0.25, graph 0.30, context 0.10, renormalised over the
sources that apply). The model zoo plugs in more sources (graph walks, two-tower
retrieval) by implementing the protocol and registering a weight; nothing else changes,
because the ranker graph takes a variable number of sources.

Sources here: collaborative (the exported scorer; new users are folded in from their
events), content-based (preference vector · content vectors, SPEC §2.1/§2.4) and context
(mood -> genres, time-of-day popularity, SPEC §2.6). Cold start (SPEC §2.8): users with at
most 5 watches get popular items in their signup genres, else global trending items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sona.genres import map_genres
from sona.serving.metrics import ServingMetrics
from sona.serving.model_store import LoadedModel
from sona.serving.schemas import RecommendationContext

Matrix = NDArray[np.float32]

#: SPEC §2.6 mood table, labels as in the SPEC; they are mapped onto canonical genres with
#: :func:`sona.genres.map_genre` ("nature" -> documentary; "classic" has no genre)
MOOD_GENRES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("happy", "joyful", "cheerful"), ("comedy", "family", "animation")),
    **dict.fromkeys(("sad", "melancholy", "somber"), ("drama", "romance")),
    **dict.fromkeys(("excited", "energetic", "pumped"), ("action", "adventure", "thriller")),
    **dict.fromkeys(("relaxed", "calm", "peaceful"), ("documentary", "nature", "lifestyle")),
    **dict.fromkeys(("scared", "fearful"), ("horror", "thriller")),
    **dict.fromkeys(("romantic", "loving"), ("romance", "drama")),
    **dict.fromkeys(("curious", "intrigued"), ("documentary", "mystery", "sci_fi")),
    **dict.fromkeys(("nostalgic", "reminiscent"), ("classic", "drama")),
}
DEFAULT_MOOD_GENRES: tuple[str, ...] = ("drama", "comedy")


@dataclass(frozen=True, eq=False)
class UserState:
    """What the ranker needs about one user, in the served model's item indices."""

    user_id: str
    user_idx: int  # row in the model's user index, -1 when the model was not trained on them
    watched: NDArray[np.int64]  # training items + items of stored events
    event_items: NDArray[np.int64]  # items of stored events known to the model, oldest first
    watch_count: int  # training interactions + stored events
    preference: Matrix  # (D,) unit vector or zeros
    lora_b: Matrix | None  # (D, r) the user's adapter, None when never trained
    adapter_version: int | None = None
    signup_genres: tuple[str, ...] = ()

    def is_cold(self, max_events: int) -> bool:
        """SPEC §2.8: cold when the watch count is at most ``max_events``."""
        return self.watch_count <= max_events


@dataclass(eq=False)
class ScoringBatch:
    """One scoring pass over a batch of users; shared features are computed once, lazily."""

    model: LoadedModel
    users: list[UserState]
    context: RecommendationContext | None
    metrics: ServingMetrics
    _extra: dict[str, Matrix] = field(default_factory=dict)

    @cached_property
    def content_and_lora(self) -> tuple[Matrix, Matrix]:
        """Content similarity and LoRA score of every item, each ``(B, n_items)``."""
        dim, rank = self.model.dim, self.model.lora_rank
        prefs = np.stack([u.preference for u in self.users]).astype(np.float32)
        adapters = np.stack([u.lora_b if u.lora_b is not None else np.zeros((dim, rank),
                                                                            np.float32)
                             for u in self.users]).astype(np.float32)
        with self.metrics.time_source("content_based"):
            return self.model.content_scores(prefs, adapters)


class CandidateSource(Protocol):
    """A scorer of every item for a batch of users (the hybrid's plug-in point)."""

    #: key of the source in weights, metrics and ``based_on`` (e.g. "graph_based")
    name: str
    #: SPEC recommendation_type of items this source contributes most to
    label: str

    def scores(self, batch: ScoringBatch) -> tuple[Matrix, NDArray[np.bool_]]:
        """Raw scores ``(B, n_items)`` (any scale) and which users it applies to ``(B,)``."""
        ...


class CollaborativeSource:
    """The exported collaborative scorer; unknown users are folded in from their events."""

    name = "collaborative"
    label = "collaborative"

    def scores(self, batch: ScoringBatch) -> tuple[Matrix, NDArray[np.bool_]]:
        model = batch.model
        applies = np.zeros(len(batch.users), bool)
        with batch.metrics.time_source(self.name):
            known = [i for i, u in enumerate(batch.users) if u.user_idx >= 0]
            width = model.manifest["n_items"] if model.user_factors is None else \
                model.user_factors.shape[1]
            inputs = np.zeros((len(batch.users), width), np.float32)
            if known:
                idx = np.array([batch.users[i].user_idx for i in known], np.int64)
                inputs[known] = model.user_inputs(idx)
                applies[known] = True
            for i, u in enumerate(batch.users):
                if u.user_idx < 0 and len(u.event_items):
                    inputs[i] = model.fold_in(u.event_items)[0]
                    applies[i] = True
            rows = model.collaborative(inputs)
        return rows, applies


class ContentSource:
    """Cosine of the preference vector with each item's content vector."""

    name = "content_based"
    label = "content_based"

    def scores(self, batch: ScoringBatch) -> tuple[Matrix, NDArray[np.bool_]]:
        content, _ = batch.content_and_lora
        applies = np.array([bool(np.any(u.preference)) for u in batch.users])
        return content, applies


class ContextSource:
    """SPEC §2.6 context scores: mood genres and time-of-day popularity (same for the batch)."""

    name = "context"
    label = "context_aware"

    def scores(self, batch: ScoringBatch) -> tuple[Matrix, NDArray[np.bool_]]:
        n_users, model, ctx = len(batch.users), batch.model, batch.context
        with batch.metrics.time_source(self.name):
            row = context_scores(model, ctx) if ctx is not None else None
        if row is None:
            return np.zeros((n_users, model.n_items), np.float32), np.zeros(n_users, bool)
        return np.broadcast_to(row, (n_users, model.n_items)), np.ones(n_users, bool)


def _popularity_share(model: LoadedModel) -> NDArray[np.floating]:
    top = float(model.popularity.max(initial=0.0))
    return model.popularity / top if top > 0 else np.zeros(model.n_items)


def context_scores(model: LoadedModel, ctx: RecommendationContext) -> Matrix | None:
    """Mean of the applicable context parts per item, or None when none applies.

    Mood: ``0.5·popularity + 0.5·matched/requested`` for items in a mood genre (0 otherwise);
    time of day: ``min(1, 0.6·popularity + 0.4·window share)`` for items watched in the
    window. Popularity is relative to the most popular item. Devices need item runtimes,
    which the bundle does not carry, so ``device_type`` is accepted but has no effect.
    """
    pop = _popularity_share(model)
    parts = []
    if ctx.mood:
        labels = MOOD_GENRES.get(ctx.mood.strip().lower(), DEFAULT_MOOD_GENRES)
        wanted = map_genres(labels)
        cols = [c for c in (model.genre_column(g) for g in wanted) if c is not None]
        matched = model.genres[:, cols].sum(axis=1) if cols else np.zeros(model.n_items)
        parts.append(np.where(matched > 0, 0.5 * pop + 0.5 * matched / max(len(wanted), 1), 0.0))
    if ctx.time_of_day:
        window = model.window_popularity(ctx.time_of_day)
        if window is not None and window.max(initial=0.0) > 0:
            share = window / window.max()
            parts.append(np.where(window > 0, np.minimum(1.0, 0.6 * pop + 0.4 * share), 0.0))
    if not parts:
        return None
    return np.mean(parts, axis=0).astype(np.float32)


def cold_start(model: LoadedModel, user: UserState, limit: int, *,
               exclude_watched: bool) -> tuple[NDArray[np.int64], NDArray[np.float64], str, str]:
    """SPEC §2.8 cold-start list: ``(item_idx, confidence, strategy, based_on)``.

    Signup genres known to the catalog: most popular items having any of them, confidence
    ``0.8 - 0.02·i``; otherwise global trending (popularity), ``0.6 - 0.01·i``. Ties in
    popularity keep the lower item index first (deterministic).
    """
    genres = map_genres(user.signup_genres)
    cols = [c for c in (model.genre_column(g) for g in genres) if c is not None]
    eligible = np.ones(model.n_items, bool)
    if exclude_watched and len(user.watched):
        eligible[user.watched] = False
    if cols:
        in_genres = eligible & model.genres[:, cols].any(axis=1)
        if in_genres.any():
            picked = _most_popular(model, in_genres, limit)
            conf = np.maximum(0.8 - 0.02 * np.arange(len(picked)), 0.0)
            names = ", ".join(model.genre_names[c] for c in cols)
            return picked, conf, "cold_start_genres", f"signup genres: {names}"
    picked = _most_popular(model, eligible, limit)
    conf = np.maximum(0.6 - 0.01 * np.arange(len(picked)), 0.0)
    return picked, conf, "cold_start_trending", "trending"


def _most_popular(model: LoadedModel, mask: NDArray[np.bool_], limit: int) -> NDArray[np.int64]:
    candidates = np.flatnonzero(mask)
    order = np.lexsort((candidates, -model.popularity[candidates]))
    return candidates[order[:limit]].astype(np.int64)


__all__ = [
    "DEFAULT_MOOD_GENRES", "MOOD_GENRES", "CandidateSource", "CollaborativeSource",
    "ContentSource", "ContextSource", "ScoringBatch", "UserState", "cold_start",
    "context_scores",
]
