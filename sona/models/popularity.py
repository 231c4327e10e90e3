"""Most-popular baseline: every user gets the items with the most interactions.

The floor every personalised model must beat; also the explicit cold-start fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.models.base import Recommender
from sona.models.export import ScorerExport, build_popularity_export
from sona.types import IndexArray


@dataclass(frozen=True, slots=True)
class PopularityConfig:
    """Popularity settings."""

    # what counts: "count" = distinct users per item, "weight" = summed interaction weight
    measure: Literal["count", "weight"] = "count"


class Popularity(Recommender[PopularityConfig]):
    """Ranks items by training popularity; identical lists for all users (minus seen)."""

    config_class = PopularityConfig
    learns_cooccurrence = False

    item_scores_: NDArray[np.float64]

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        if self.config.measure == "count":
            counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
        else:
            counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.item_scores_ = counts.astype(np.float64)

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        return np.broadcast_to(self.item_scores_, (len(user_idx), len(self.item_scores_)))

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        # without co-occurrence, the best "similar" guess is the popular items
        return np.broadcast_to(self.item_scores_, (len(item_idx), len(self.item_scores_)))

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.float64]:
        return self.item_scores_[item_idx]

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.item_scores_ = state["item_scores"]

    def export_scorer(self) -> ScorerExport:
        """A ``popularity`` graph: the item scores broadcast to every input row.

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()
        return build_popularity_export(self, self.item_scores_)
