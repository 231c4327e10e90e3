"""Data-quality score with freshness decay (SPEC §3.7) and the low-quality report.

``base = Σ weight(field) for present fields + 0.15 · freshness`` (clamped to [0, 1]) with
field weights description 0.15, poster (medium or large) 0.15, backdrop 0.10,
release_year 0.05, runtime 0.05, genres 0.10, rating 0.15, IMDb or TMDb id 0.10 (sum 0.85).
The original defined ``freshness_weight = 0.15`` but never added it; **NEW**: it is added,
so a complete, just-updated record scores exactly 1.0.

``freshness = exp(-0.01 · days_since_update)`` and the final score decays the base:
``score = clamp(max(base · freshness, 0.5 · base), 0, 1)``, i.e. a stale record never loses
more than half its base score.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from sona.catalog.schema import ContentItem
from sona.catalog.store import CatalogStore

log = logging.getLogger(__name__)

FIELD_WEIGHTS: dict[str, float] = {
    "description": 0.15, "poster": 0.15, "backdrop": 0.10, "release_year": 0.05,
    "runtime": 0.05, "genres": 0.10, "rating": 0.15, "external_id": 0.10,
}


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """Weights and decay of the quality score (SPEC §3.7 values)."""

    # weight of each field when present (SPEC §3.7)
    field_weights: dict[str, float] = field(default_factory=lambda: dict(FIELD_WEIGHTS))
    freshness_weight: float = 0.15  # weight of the freshness term in the base score (NEW)
    decay_per_day: float = 0.01  # freshness = exp(-decay_per_day * days since update)
    floor_fraction: float = 0.5  # the decayed score never drops below this share of base


@dataclass(frozen=True, slots=True)
class QualityScore:
    """Components of one item's score."""

    fields: float  # sum of present-field weights
    freshness: float  # exp(-decay * days), in (0, 1]
    base: float  # fields + freshness_weight * freshness, clamped
    score: float  # decayed and floored final score
    missing_fields: list[str]


def _present(item: ContentItem) -> dict[str, bool]:
    ext = item.external_ids
    return {
        "description": bool(item.overview and item.overview.strip()),
        "poster": bool(item.images.poster_medium or item.images.poster_large),
        "backdrop": bool(item.images.backdrop),
        "release_year": item.release_year is not None,
        "runtime": item.runtime_minutes is not None,
        "genres": bool(item.genres),
        "rating": item.average_rating is not None,
        "external_id": bool(ext.imdb_id or ext.tmdb_id),
    }


def freshness(days: float, decay_per_day: float = 0.01) -> float:
    """``exp(-decay_per_day · max(days, 0))``."""
    return math.exp(-decay_per_day * max(days, 0.0))


def quality_score(item: ContentItem, *, now: datetime,
                  config: QualityConfig | None = None) -> QualityScore:
    """Score ``item`` as of ``now`` (its age is ``now - item.last_updated``)."""
    cfg = config or QualityConfig()
    present = _present(item)
    unknown = set(cfg.field_weights) - set(present)
    if unknown:
        raise ValueError(f"unknown quality field(s) {sorted(unknown)}; expected {sorted(present)}")
    fields = sum(w for name, w in cfg.field_weights.items() if present[name])
    days = (now - item.last_updated).total_seconds() / 86_400
    fresh = freshness(days, cfg.decay_per_day)
    base = min(max(fields + cfg.freshness_weight * fresh, 0.0), 1.0)
    score = min(max(max(base * fresh, cfg.floor_fraction * base), 0.0), 1.0)
    missing = [name for name in cfg.field_weights if not present[name]]
    return QualityScore(fields, fresh, base, score, missing)


class LowQualityItem(BaseModel):
    """One row of the quality report."""

    id: str
    title: str
    quality_score: float
    platform: str | None
    content_type: str
    missing_fields: list[str]


class QualityReport(BaseModel):
    """``GET /quality/report`` body (SPEC §3.7)."""

    total_low_quality: int
    threshold: float
    low_quality_items: list[LowQualityItem]


def quality_report(items: Iterable[ContentItem], *, now: datetime, threshold: float = 0.6,
                   limit: int = 100, config: QualityConfig | None = None) -> QualityReport:
    """Items scoring below ``threshold``, worst first (at most ``limit``; total counts all).

    Raises:
        ValueError: threshold outside [0, 1] or a negative limit.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    total = 0
    worst: list[tuple[float, str, LowQualityItem]] = []
    for item in items:
        q = quality_score(item, now=now, config=config)
        if q.score >= threshold:
            continue
        total += 1
        row = LowQualityItem(
            id=item.canonical_id, title=item.title, quality_score=round(q.score, 6),
            platform=item.source_platforms[0] if item.source_platforms else None,
            content_type=item.content_type, missing_fields=q.missing_fields)
        heapq.heappush(worst, (-q.score, item.canonical_id, row))
        if len(worst) > limit:
            heapq.heappop(worst)
    rows = [r for _, _, r in sorted(worst, key=lambda t: (-t[0], t[1]))]
    return QualityReport(total_low_quality=total, threshold=threshold, low_quality_items=rows)


def recalculate_quality(store: CatalogStore, *, now: datetime,
                        config: QualityConfig | None = None) -> int:
    """Batch job: recompute every item's ``data_quality_score``; returns how many changed."""
    scores = {item.canonical_id: round(quality_score(item, now=now, config=config).score, 6)
              for item in store.iter_items()}
    changed = store.set_quality_scores(scores)
    log.info("quality recalculated for %d items, %d changed", len(scores), changed)
    return changed


__all__ = [
    "FIELD_WEIGHTS", "LowQualityItem", "QualityConfig", "QualityReport", "QualityScore",
    "freshness", "quality_report", "quality_score", "recalculate_quality",
]
