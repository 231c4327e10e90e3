"""Synthetic users built from MovieLens 100K preferences, and their click model.

Each synthetic user copies a random ML-100K user (drawn with replacement):

- genre affinity ``a_u`` in [0, 1]: the user's rating mass above 2.5 per genre, scaled so
  the favourite genre is 1;
- activity ``theta_u``: ``sqrt(n_ratings / median)`` clipped to [0.3, 3], times a
  log-normal(0, 0.25) draw so copies of one user differ;
- liked items: what the user rated >= 4 (sent as viewing events to warm the profile).

A shown item ``i`` at 0-based slot ``p`` is clicked with probability
``min(1, base * theta_u * exam(p) * rel(u, i) * lift)``, with the position bias
``exam(p) = 1 / log2(p + 2)`` and ``rel = floor + (1 - floor) * mean_{g in genres(i)} a_u[g]``.
``lift`` is ``1 + uplift`` for the treatment arm and 1 otherwise, so the true relative
uplift of expected clicks is exactly ``uplift`` when both arms show the same lists (no
click probability reaches the cap at the default scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.data.sources import MovieLens


def examination(positions: NDArray[np.int64]) -> NDArray[np.float64]:
    """Position bias ``1 / log2(p + 2)`` of 0-based slots."""
    return 1.0 / np.log2(np.asarray(positions, np.float64) + 2.0)


@dataclass(frozen=True)
class SyntheticUsers:
    """A population of synthetic users (index ``u`` = position in ``user_ids``)."""

    user_ids: list[str]
    base_users: NDArray[Any]  # the ML-100K user each one copies
    activity: NDArray[np.float64]  # theta_u
    affinity: NDArray[np.float64]  # (n_users, n_genres) in [0, 1]
    liked: list[list[Any]]  # item ids the base user rated >= 4, best first
    item_row: dict[str, int]  # item id (as text) -> row of item_genres
    item_genres: NDArray[np.bool_]  # (n_items, n_genres)
    base: float = 0.3  # click scale
    floor: float = 0.2  # relevance of an item outside the user's genres

    @classmethod
    def from_movielens(cls, ml: MovieLens, n: int, *, seed: int = 0, prefix: str = "sim",
                       base: float = 0.3) -> SyntheticUsers:
        """``n`` users copied from ML-100K with the seeded generator.

        Raises:
            ValueError: ``n < 1``.
        """
        if n < 1:
            raise ValueError(f"need at least 1 synthetic user, got {n}")
        rng = np.random.default_rng(seed)
        data = ml.interactions
        genres, _ = ml.catalog.genre_matrix(data.items)
        item_genres = genres.toarray() > 0
        frame = data.frame
        weight = np.clip(frame["rating"].to_numpy(np.float64) - 2.5, 0.0, None)
        mass = np.zeros((data.n_users, item_genres.shape[1]))
        np.add.at(mass, frame["user_idx"].to_numpy(), weight[:, None] *
                  item_genres[frame["item_idx"].to_numpy()])
        top = mass.max(axis=1, keepdims=True)
        affinity = np.divide(mass, top, out=np.zeros_like(mass), where=top > 0)
        counts = np.bincount(frame["user_idx"].to_numpy(), minlength=data.n_users)
        theta = np.clip(np.sqrt(counts / np.median(counts)), 0.3, 3.0)
        picks = rng.integers(0, data.n_users, n)
        liked_by_user: dict[int, list[Any]] = {}
        good = frame[frame["rating"] >= 4].sort_values(["user_idx", "rating"],
                                                        ascending=[True, False])
        for idx, items in good.groupby("user_idx")["item_id"]:
            liked_by_user[int(idx)] = items.tolist()
        return cls(
            user_ids=[f"{prefix}-{i}" for i in range(n)],
            base_users=data.users.ids(picks),
            activity=theta[picks] * rng.lognormal(0.0, 0.25, n),
            affinity=affinity[picks],
            liked=[liked_by_user.get(int(p), []) for p in picks],
            item_row={str(i): r for r, i in enumerate(data.items.ids_array)},
            item_genres=item_genres, base=base)

    def __len__(self) -> int:
        return len(self.user_ids)

    def relevance(self, u: int, item_ids: list[Any]) -> NDArray[np.float64]:
        """``rel(u, i)`` per item (items unknown to ML-100K get the floor)."""
        out = np.full(len(item_ids), self.floor)
        for k, item in enumerate(item_ids):
            row = self.item_row.get(str(item))
            if row is not None and self.item_genres[row].any():
                out[k] += (1 - self.floor) * self.affinity[u, self.item_genres[row]].mean()
        return out

    def click_probabilities(self, u: int, item_ids: list[Any], *, lift: float = 1.0
                            ) -> NDArray[np.float64]:
        """P(click) of each shown item (slot = list position)."""
        p = self.base * self.activity[u] * examination(np.arange(len(item_ids))) * \
            self.relevance(u, item_ids) * lift
        return np.clip(p, 0.0, 1.0)


__all__ = ["SyntheticUsers", "examination"]
