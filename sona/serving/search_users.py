"""User preference vectors for personalised search (SPEC §3.1 step 5).

The search engine re-ranks with ``rel·(1 − b) + b·(user · item)``, so the user vector must
live in the space of the engine's item embeddings. The SONA preference vector of the
served model (:mod:`sona.serving.personalization`) lives in the space of the *bundle's*
content vectors, which is the same space only when the bundle and the engine embed with
the same encoder (model name and version) at the same dimension, e.g. MiniLM text vectors
on both sides. Then :class:`SearchUserVectors` returns that SONA vector as it is.

Otherwise (a bundle with genre-indicator or TF-IDF content vectors, an engine built with
TF-IDF, or no model loaded yet) the dimensions or the spaces differ, and the same SPEC §2.1
formula is applied to the engine's own item vectors: training interactions of the served
model count as undated full views, stored viewing events (:class:`~sona.profile.ProfileStore`)
get their decayed engagement weights, and ``L2norm(Σ w·x)`` runs over the watched items
the search catalog knows. A user with neither gets ``None`` (search is not personalised).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.profile import ProfileStore, engagement_weights, event_weights, weighted_preference
from sona.search.engine import SearchEngine
from sona.serving.model_store import LoadedModel, ModelStore
from sona.serving.personalization import Personalization

log = logging.getLogger(__name__)

# SPEC §2.1 weight of a training interaction: a full view (completion 1), unrated, no decay
_FULL_VIEW = float(engagement_weights(np.ones(1), np.full(1, np.nan), np.zeros(1, bool),
                                      np.zeros(1, bool))[0])


def encoder_identity(engine: SearchEngine) -> tuple[str, str]:
    """``(model name, version)`` of the encoder that embedded the engine's documents."""
    encoder: Any = engine.encoder
    return str(getattr(encoder, "model_name", "")), str(getattr(encoder, "model_version", ""))


class SearchUserVectors:
    """``user_id -> preference vector`` in the search engine's embedding space.

    Args:
        engine: the built search engine.
        store: the served model (its content space and training history).
        personalization: the SONA profile logic (cached per user and model version).
        profiles: stored viewing events.
        max_events: most recent stored events used (as in personalization).
    """

    def __init__(self, engine: SearchEngine, store: ModelStore, personalization: Personalization,
                 profiles: ProfileStore, *, max_events: int = 1000) -> None:
        self.engine = engine
        self.store = store
        self.personalization = personalization
        self.profiles = profiles
        self.max_events = max_events
        self.encoder = encoder_identity(engine)
        self._positions = {str(item_id): pos for pos, item_id in enumerate(engine.ids_)}

    def shares_space(self, model: LoadedModel) -> bool:
        """Whether ``model``'s content vectors are in the engine's embedding space."""
        content = model.manifest.get("content", {})
        same_encoder = (str(content.get("model")), str(content.get("version"))) == self.encoder
        return same_encoder and model.dim == int(self.engine.vectors_.shape[1])

    def _model(self) -> LoadedModel | None:
        return self.store.current if self.store.ready else None

    def __call__(self, user_id: str) -> NDArray[np.float32] | None:
        """The user's vector, or ``None`` when the user has no history anywhere."""
        model = self._model()
        if model is not None and self.shares_space(model):
            state = self.personalization.state(model, str(user_id))
            return state.preference if np.any(state.preference) else None
        history = self._training_items(model, str(user_id))
        events = self.profiles.events(str(user_id), limit=self.max_events) \
            if self.profiles.get(str(user_id)) is not None else []
        if not len(history) and not events:
            return None
        rows = np.array([self._positions.get(str(i), -1) for i in history]
                        + [self._positions.get(str(e.content_id), -1) for e in events],
                        dtype=np.int64)
        weights = np.concatenate([np.full(len(history), _FULL_VIEW),
                                  event_weights(events, now=time.time())])
        vec = weighted_preference(rows, weights, self.engine.vectors_)
        return vec if np.any(vec) else None

    @staticmethod
    def _training_items(model: LoadedModel | None, user_id: str) -> list[Any]:
        """External ids of the items ``user_id`` interacted with in the model's training data."""
        if model is None:
            return []
        user_idx = int(model.users.numbers([user_id], missing="negative")[0])
        if user_idx < 0:
            return []
        seen = model.seen
        idx = seen.indices[seen.indptr[user_idx]:seen.indptr[user_idx + 1]]
        return list(model.items.ids(np.asarray(idx, np.int64))) if len(idx) else []


__all__ = ["SearchUserVectors", "encoder_identity"]
