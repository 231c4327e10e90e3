"""What the pipeline knows about one user when it ranks: history, events, preference, adapter.

A :class:`UserState` is built the same way offline and online: :meth:`Pipeline.states`
makes one from the training data alone (what ``sona run`` evaluates), and the service adds
the viewing events and the LoRA adapter it stores (:meth:`Pipeline.state`). The SPEC §2.1
preference vector is one function here, so both sides weigh events identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sona.profile import ViewingEvent, engagement_weights, event_weights, weighted_preference

#: SPEC §2.1 weight of a training interaction: an undated full view (completion 1, unrated)
FULL_VIEW_WEIGHT: float = float(engagement_weights(
    np.ones(1), np.full(1, np.nan), np.zeros(1, bool), np.zeros(1, bool))[0])


@dataclass(frozen=True, eq=False)
class UserState:
    """One user as the pipeline sees them, in the pipeline's item indices.

    Attributes:
        user_id: external id.
        user_idx: row in the pipeline's user index; -1 when it was not trained on them.
        watched: training items plus items of stored events (excluded when asked).
        event_items: items of stored events the pipeline knows, oldest first.
        watch_count: distinct titles of the training history and the stored events.
        preference: ``(D,)`` unit preference vector, zeros without history.
        lora_b: ``(D, r)`` the user's LoRA adapter, None when never trained.
        adapter_version: version of that adapter.
        signup_genres: genres chosen at signup (cold start).
    """

    user_id: str
    user_idx: int
    watched: NDArray[np.int64]
    event_items: NDArray[np.int64]
    watch_count: int
    preference: NDArray[np.float32]
    lora_b: NDArray[np.float32] | None = None
    adapter_version: int | None = None
    signup_genres: tuple[str, ...] = ()

    def is_cold(self, max_events: int) -> bool:
        """SPEC §2.8: cold when the watch count is at most ``max_events``."""
        return self.watch_count <= max_events


def preference(history: NDArray[np.int64], events: Sequence[ViewingEvent],
               event_idx: NDArray[np.int64], vectors: NDArray[np.float32], *,
               now: float) -> NDArray[np.float32]:
    """SPEC §2.1 preference vector over training items (full views) and stored events.

    Args:
        history: item indices of the user's training interactions.
        events: stored viewing events (decay and engagement weighted at ``now``).
        event_idx: item index of each event (-1: unknown item, skipped).
        vectors: ``(n_items, D)`` content vectors.
        now: reference time of the decay, Unix seconds.

    Returns:
        ``(D,)`` float32 unit vector, zeros when nothing qualifies.
    """
    rows = np.concatenate([np.asarray(history, np.int64), np.asarray(event_idx, np.int64)])
    weights = np.concatenate([np.full(len(history), FULL_VIEW_WEIGHT),
                              event_weights(list(events), now=now)])
    return weighted_preference(rows, weights, vectors)


__all__ = ["FULL_VIEW_WEIGHT", "UserState", "preference"]
