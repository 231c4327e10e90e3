"""Context-aware re-ranking by rules (SPEC §2.6): time of day, device, mood.

:class:`ContextStats` is learned once from a training log (+ optional catalog): item
popularity, each item's hour-of-day and day-of-week patterns, runtime and canonical genres.
:func:`context_scores` turns a request :class:`Context` into one score per item following
the SPEC rules, and :func:`context_rerank` mixes that score into a ranked pool.

SPEC rules, with popularity ``pop`` = item events / the most popular item's events (0-1):

- time of day: windows morning 6-12, afternoon 12-18, evening 18-24, night 0-6; candidates
  are items with an event in the request's window; ``score = min(1, 0.6·pop + 0.4·hourly[h])``
  where ``hourly[h]`` is the item's share of events in hour ``h`` divided by its peak
  hour's share (1 at the item's busiest hour). With a weekday too, the temporal part is
  ``0.6·hourly[h] + 0.4·weekday[d]`` (SPEC "temporal score").
- device: tv needs runtime >= 30 min (0.8 if > 60 else 0.7); mobile/tablet runtime <= 60
  (0.8 if < 30 else 0.7); desktop any (0.9); ``score = min(1, 0.5·pop + 0.5·device)``.
- mood: SPEC's mood table mapped onto the canonical genres by :mod:`sona.genres`
  (labels with no canonical genre, e.g. "lifestyle", "classic", are dropped);
  ``score = 0.5·pop + 0.5·matched / requested``.
- time of day without an hour (a served request names only its window): the item's best
  hour inside the window stands for ``hourly[h]``; a weekday alone scores
  ``min(1, 0.6·pop + 0.4·weekday[d])`` for items watched on that day.
- viewing with (kids, partner, friends, ...): :data:`VIEWING_WITH_LABELS` genres, scored like
  a mood: ``0.5·pop + 0.5·matched / requested``.
- every rule requires ``pop > min_popularity`` (SPEC: 0.3); an item's context score is the
  best score over the rules that apply to it (SPEC: candidates deduped by id), else 0.

Runtime: taken from a ``runtime`` catalog column (minutes) when present. MovieLens 100K has
no runtime (neither in the item file nor among the Freebase relations), so there the
device rule is *neutral*: items of unknown runtime get no device score rather than an
invented one. Hours come from Unix timestamps shifted by ``utc_offset_hours`` (ML-100K
does not record the rater's time zone; UTC is used).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.data.interactions import Catalog, Interactions
from sona.genres import GENRES, map_genres, movielens_genres
from sona.ranking.rerank import minmax_rows
from sona.types import PAD_IDX, IndexArray

log = logging.getLogger(__name__)

Device = Literal["tv", "mobile", "tablet", "desktop"]

#: SPEC §2.6 time-of-day windows [start hour, end hour)
TIME_WINDOWS: dict[str, tuple[int, int]] = {
    "night": (0, 6), "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24),
}

#: SPEC §2.6 mood -> genre labels (mapped onto canonical genres by :func:`mood_genres`)
MOOD_LABELS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("happy", "joyful", "cheerful"), ("comedy", "family", "animation")),
    **dict.fromkeys(("sad", "melancholy", "somber"), ("drama", "romance")),
    **dict.fromkeys(("excited", "energetic", "pumped"), ("action", "adventure", "thriller")),
    **dict.fromkeys(("relaxed", "calm", "peaceful"), ("documentary", "nature", "lifestyle")),
    **dict.fromkeys(("scared", "fearful"), ("horror", "thriller")),
    **dict.fromkeys(("romantic", "loving"), ("romance", "drama")),
    **dict.fromkeys(("curious", "intrigued"), ("documentary", "mystery", "sci-fi")),
    **dict.fromkeys(("nostalgic", "reminiscent"), ("classic", "drama")),
}
DEFAULT_MOOD_LABELS: tuple[str, ...] = ("drama", "comedy")

#: who the viewer watches with -> genre labels (SPEC §1 ``viewing_with``); labels not listed
#: (e.g. "alone") add no rule
VIEWING_WITH_LABELS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("kids", "children", "child", "family"), ("family", "animation", "comedy")),
    **dict.fromkeys(("partner", "spouse", "date", "couple"), ("romance", "comedy", "drama")),
    **dict.fromkeys(("friends", "group", "party"), ("comedy", "action", "horror")),
}


def mood_genres(mood: str) -> list[str]:
    """Canonical genres of a mood (SPEC table; unknown moods get the default drama, comedy)."""
    labels = MOOD_LABELS.get(mood.strip().lower(), DEFAULT_MOOD_LABELS)
    return map_genres(labels)


def time_window(hour: int) -> str:
    """SPEC time-of-day window of an hour 0-23."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be in 0..23, got {hour}")
    return next(name for name, (lo, hi) in TIME_WINDOWS.items() if lo <= hour < hi)


def viewing_with_genres(companions: tuple[str, ...] | list[str]) -> list[str]:
    """Canonical genres for the people watching along (unknown labels add none)."""
    labels = [g for c in companions for g in VIEWING_WITH_LABELS.get(c.strip().lower(), ())]
    return list(dict.fromkeys(map_genres(labels)))


@dataclass(frozen=True, slots=True)
class Context:
    """One request's context (every field optional); offline and served requests alike."""

    # local hour of the request, 0-23 (takes precedence over time_of_day)
    hour: int | None = None
    # day of the week, 0 = Monday ... 6 = Sunday
    weekday: int | None = None
    # client device
    device: Device | None = None
    # free-text mood (SPEC table keys, e.g. "happy", "scared")
    mood: str | None = None
    # SPEC time-of-day window (morning, afternoon, evening, night) when no hour is known
    time_of_day: str | None = None
    # who watches along (e.g. "kids", "partner", "friends")
    viewing_with: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when no field is set (no context rule applies)."""
        return (self.hour is None and self.weekday is None and self.device is None
                and not self.mood and self.time_of_day is None and not self.viewing_with)


@dataclass(frozen=True)
class ContextStats:
    """Per-item statistics the rules need, aligned to an item :class:`IdIndex`.

    Attributes:
        popularity: ``(n_items,)`` events / max events, in [0, 1].
        hourly: ``(n_items, 24)`` share of the item's events per hour / its peak share.
        weekday: ``(n_items, 7)`` the same per day of the week (0 = Monday).
        runtime: ``(n_items,)`` minutes, NaN where unknown.
        genres: ``(n_items, len(GENRES))`` canonical genre indicators.
    """

    popularity: NDArray[np.float64]
    hourly: NDArray[np.float64]
    weekday: NDArray[np.float64]
    runtime: NDArray[np.float64]
    genres: NDArray[np.bool_]

    @classmethod
    def from_interactions(cls, data: Interactions, catalog: Catalog | None = None, *,
                          utc_offset_hours: float = 0.0) -> ContextStats:
        """Learn the statistics from ``data`` (timestamps needed for hour/weekday)."""
        n_items = data.n_items
        items = data.frame["item_idx"].to_numpy()
        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        popularity = counts / counts.max() if counts.max() > 0 else counts
        stamps = data.frame["timestamp"].to_numpy(np.float64)
        known = np.isfinite(stamps)
        hours, days = event_hour_weekday(stamps[known], utc_offset_hours)
        hourly = _peak_share(items[known], hours, n_items, 24)
        weekday = _peak_share(items[known], days, n_items, 7)
        runtime = np.full(n_items, np.nan)
        genres = np.zeros((n_items, len(GENRES)), dtype=bool)
        if catalog is not None:
            runtime, genres = _catalog_columns(catalog, data.items)
        return cls(popularity, hourly, weekday, runtime, genres)


def event_hour_weekday(stamps: NDArray[np.floating],
                       utc_offset_hours: float = 0.0) -> tuple[NDArray[np.int64],
                                                               NDArray[np.int64]]:
    """Hour of day (0-23) and weekday (0 = Monday) of Unix-second timestamps."""
    local = np.asarray(stamps, dtype=np.float64) + utc_offset_hours * 3600.0
    seconds = np.floor(local).astype(np.int64)
    hours = (seconds // 3600) % 24
    # 1970-01-01 was a Thursday (weekday 3)
    days = (seconds // 86400 + 3) % 7
    return hours, days


def _peak_share(items: IndexArray, bins: NDArray[np.int64], n_items: int,
                n_bins: int) -> NDArray[np.float64]:
    table = np.zeros((n_items, n_bins))
    np.add.at(table, (items, bins), 1.0)
    peak = table.max(axis=1, keepdims=True)
    return np.divide(table, peak, out=np.zeros_like(table), where=peak > 0)


def _catalog_columns(catalog: Catalog,
                     items: IdIndex) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    frame = catalog.frame
    idx = items.numbers(frame["item_id"].to_numpy(), missing="negative")
    keep = idx >= 0
    runtime = np.full(len(items), np.nan)
    if "runtime" in frame.columns:
        runtime[idx[keep]] = pd.to_numeric(frame["runtime"], errors="coerce").to_numpy(
            np.float64)[keep]
    genres = np.zeros((len(items), len(GENRES)), dtype=bool)
    col = {g: j for j, g in enumerate(GENRES)}
    for i, labels in zip(idx[keep], frame["genres"].to_numpy()[keep], strict=True):
        for g in movielens_genres(labels):
            genres[i, col[g]] = True
    return runtime, genres


def device_scores(runtime: NDArray[np.float64], device: Device) -> NDArray[np.float64]:
    """SPEC device score per item; NaN where the device excludes the item or runtime is
    unknown (neutral: no device boost)."""
    r = np.asarray(runtime, dtype=np.float64)
    out = np.full(r.shape, np.nan)
    known = np.isfinite(r)
    if device == "tv":
        ok = known & (r >= 30)
        out[ok] = np.where(r[ok] > 60, 0.8, 0.7)
    elif device in ("mobile", "tablet"):
        ok = known & (r <= 60)
        out[ok] = np.where(r[ok] < 30, 0.8, 0.7)
    elif device == "desktop":
        out[known] = 0.9
    else:
        raise ValueError(f"unknown device {device!r}; expected tv, mobile, tablet or desktop")
    return out


def context_scores(stats: ContextStats, context: Context, *,
                   min_popularity: float = 0.3) -> NDArray[np.float64]:
    """One context score per item in [0, 1] for ``context`` (0 where no rule applies).

    Raises:
        ValueError: an hour/weekday out of range or an unknown device.
    """
    pop = stats.popularity
    rules: list[NDArray[np.float64]] = []
    if context.weekday is not None and not 0 <= context.weekday <= 6:
        raise ValueError(f"weekday must be in 0..6, got {context.weekday}")
    window: tuple[int, int] | None = None
    if context.hour is not None:
        window = TIME_WINDOWS[time_window(context.hour)]
        temporal: NDArray[np.float64] | None = stats.hourly[:, context.hour]
    elif context.time_of_day is not None:
        if context.time_of_day not in TIME_WINDOWS:
            raise ValueError(f"unknown time_of_day {context.time_of_day!r}; expected one of "
                             f"{', '.join(TIME_WINDOWS)}")
        window = TIME_WINDOWS[context.time_of_day]
        temporal = stats.hourly[:, window[0]:window[1]].max(axis=1)
    else:
        temporal = None
    if window is not None and temporal is not None:
        in_window = stats.hourly[:, window[0]:window[1]].max(axis=1) > 0
        if context.weekday is not None:
            temporal = 0.6 * temporal + 0.4 * stats.weekday[:, context.weekday]
        rules.append(np.where(in_window, np.minimum(1.0, 0.6 * pop + 0.4 * temporal), np.nan))
    elif context.weekday is not None:
        day = stats.weekday[:, context.weekday]
        rules.append(np.where(day > 0, np.minimum(1.0, 0.6 * pop + 0.4 * day), np.nan))
    if context.device is not None:
        dev = device_scores(stats.runtime, context.device)
        rules.append(np.minimum(1.0, 0.5 * pop + 0.5 * dev))
    if context.mood is not None:
        wanted = mood_genres(context.mood)
        cols = [GENRES.index(g) for g in wanted]
        matched = stats.genres[:, cols].sum(axis=1) if cols else np.zeros(len(pop))
        score = 0.5 * pop + 0.5 * matched / max(len(cols), 1)
        rules.append(np.where(matched > 0, score, np.nan))
    if context.viewing_with:
        wanted = viewing_with_genres(context.viewing_with)
        if wanted:
            cols = [GENRES.index(g) for g in wanted]
            matched = stats.genres[:, cols].sum(axis=1)
            score = 0.5 * pop + 0.5 * matched / len(cols)
            rules.append(np.where(matched > 0, score, np.nan))
    if not rules:
        return np.zeros(len(pop))
    stacked = np.vstack(rules)
    best = np.max(np.where(np.isnan(stacked), -np.inf, stacked), axis=0)
    best[~np.isfinite(best) | (pop <= min_popularity)] = 0.0
    return best


def context_rerank(
    candidates: IndexArray,
    relevance: NDArray[np.floating],
    scores: NDArray[np.float64],
    k: int,
    *,
    weight: float = 0.3,
) -> tuple[IndexArray, NDArray[np.float64]]:
    """Re-rank pools by ``(1 - weight)·minmax(relevance) + weight·context``.

    Args:
        candidates: ``(n_queries, m)`` item indices, -1 padding.
        relevance: ``(n_queries, m)`` model scores of those candidates.
        scores: context scores per item ``(n_items,)`` (one context for every query) or
            ``(n_queries, n_items)`` (one context per query).
        k: list length.
        weight: context share in [0, 1]; 0 keeps the relevance order.

    Returns:
        ``(idx, mixed)`` ``(n_queries, k)`` sorted by the mixed score, ties by pool order.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    cand = np.asarray(candidates, dtype=np.int64)
    valid = (cand >= 0) & np.isfinite(np.asarray(relevance, dtype=np.float64))
    rel = minmax_rows(relevance, valid)
    ctx_table = np.asarray(scores, dtype=np.float64)
    safe = np.where(valid, cand, 0)
    ctx = ctx_table[safe] if ctx_table.ndim == 1 else np.take_along_axis(ctx_table, safe, 1)
    mixed = np.where(valid, (1.0 - weight) * rel + weight * ctx, -np.inf)
    order = np.argsort(-mixed, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(cand, order, axis=1)
    top = np.take_along_axis(mixed, order, axis=1)
    bad = ~np.isfinite(top)
    idx[bad], top[bad] = PAD_IDX, np.nan
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=PAD_IDX)
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=np.nan)
    return idx, top


__all__ = ["DEFAULT_MOOD_LABELS", "MOOD_LABELS", "TIME_WINDOWS", "VIEWING_WITH_LABELS",
           "Context", "ContextStats", "Device", "context_rerank", "context_scores",
           "device_scores", "event_hour_weekday", "mood_genres", "time_window",
           "viewing_with_genres"]
