"""Playback sessions, progress, resume positions and continue watching (SPEC §5).

Playback feeds the recommender through the one event path (:mod:`sona.events`): session
ends and progress become logged viewing events that update the user's profile.
"""

from sona.playback.service import (
    PlaybackConfig,
    PlaybackError,
    PlaybackService,
    StopResult,
    UnknownContent,
)
from sona.playback.store import PlaybackSession, PlaybackStore, Progress

__all__ = ["PlaybackConfig", "PlaybackError", "PlaybackService", "PlaybackSession",
           "PlaybackStore", "Progress", "StopResult", "UnknownContent"]
