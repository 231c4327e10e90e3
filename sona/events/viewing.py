"""Which logged events are viewing signals, and the SONA ViewingEvent each one becomes.

One rule set for every producer (the batch route, playback sessions, progress upserts), so
an event means the same for the live profile (``POST /api/v1/profile/update``'s path) and
for the training set ``sona events export`` builds:

* ``content_view``, ``content_rating``, ``playback_progress``, ``playback_complete`` and
  ``playback_abandon`` are viewing signals; every other type is logged only.
* completion rate: ``metadata.completion_rate`` when given, else ``position_seconds /
  duration_seconds`` (SPEC §5: completion_rate = position/duration), else a default by type:
  a completed playback counts 1.0, a rating 1.0 (a rated title was watched), a bare view
  ``ViewingRules.view_completion`` (0.3: the least completion that qualifies in the
  preference vector, as a sync watchlist add). Progress and abandonment must say how far.
* ``metadata.rating`` (1-5, required for ``content_rating``), ``is_rewatch`` and
  ``dismissed`` pass through; the SPEC §2.1 engagement weight
  (:func:`sona.profile.engagement_weight`) then does the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sona.events.log import LogEvent
from sona.profile import ViewingEvent

#: event types that become viewing events (the others are logged only)
VIEWING_TYPES = frozenset({"content_view", "content_rating", "playback_progress",
                           "playback_complete", "playback_abandon"})
#: event types that must name a content id
CONTENT_TYPES = VIEWING_TYPES | {"search_result_click", "playback_start", "playback_pause",
                                 "playback_resume"}


@dataclass(frozen=True, slots=True)
class ViewingRules:
    """Defaults of the event-to-viewing conversion."""

    # completion rate of a content_view without position or completion (0-1)
    view_completion: float = 0.3


#: the defaults, shared as the default argument of the functions below
DEFAULT_RULES = ViewingRules()


def completion_of(event_type: str, metadata: Mapping[str, Any],
                  rules: ViewingRules = DEFAULT_RULES) -> float | None:
    """The completion rate an event stands for (None for types that are not viewing signals).

    Raises:
        ValueError: a progress/abandon event without ``completion_rate`` or both
            ``position_seconds`` and ``duration_seconds``; a rating without ``rating``
            (the message names the metadata field).
    """
    if event_type not in VIEWING_TYPES:
        return None
    if event_type == "content_rating" and metadata.get("rating") is None:
        raise ValueError("metadata.rating: required for content_rating (an integer 1-5)")
    rate = metadata.get("completion_rate")
    if rate is not None:
        return float(rate)
    position, duration = metadata.get("position_seconds"), metadata.get("duration_seconds")
    if position is not None and duration:
        return min(1.0, max(0.0, float(position) / float(duration)))
    if event_type in ("playback_complete", "content_rating"):
        return 1.0
    if event_type == "content_view":
        return rules.view_completion
    raise ValueError(f"metadata.completion_rate: required for {event_type} (or "
                     "metadata.position_seconds with metadata.duration_seconds)")


def to_viewing_event(event: LogEvent, rules: ViewingRules = DEFAULT_RULES) -> ViewingEvent | None:
    """The SONA viewing event of ``event``, or None when it is not a viewing signal."""
    completion = completion_of(event.event_type, event.metadata, rules)
    if completion is None or event.content_id is None:
        return None
    meta = event.metadata
    rating = meta.get("rating")
    return ViewingEvent(event.content_id, float(event.timestamp), completion,
                        rating=None if rating is None else int(rating),
                        is_rewatch=bool(meta.get("is_rewatch", False)),
                        dismissed=bool(meta.get("dismissed", False)))


__all__ = ["CONTENT_TYPES", "DEFAULT_RULES", "VIEWING_TYPES", "ViewingRules", "completion_of",
           "to_viewing_event"]
