"""Synthetic serving data for tests and demos: interactions plus a genre-tagged catalog."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sona.data.interactions import Catalog, Interactions
from sona.testing.fixtures import power_law_frame

#: catalog labels as a platform would send them (mapped onto canonical genres on export)
GENRE_LABELS = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary",
                "Children's")


@dataclass(frozen=True)
class ServingData:
    """Interactions and the catalog of their items."""

    data: Interactions
    catalog: Catalog


def make_serving_data(n_users: int = 120, n_items: int = 200, n_interactions: int = 2500, *,
                      seed: int = 3) -> ServingData:
    """Power-law interactions (user ids from 1000, items from 5000), timestamps ~16 min apart
    (so every hour of the day occurs), and a catalog with two genre labels per item."""
    frame = power_law_frame(n_users, n_items, n_interactions, seed=seed)
    frame["timestamp"] = 1.7e9 + np.arange(len(frame)) * 977.0
    data = Interactions.from_frame(frame)
    rng = np.random.default_rng(seed)
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": data.items.ids_array,
        "title": [f"Movie {i}" for i in range(len(data.items))],
        "year": 1990 + rng.integers(0, 30, len(data.items)),
        "genres": ["|".join(rng.choice(GENRE_LABELS, size=2, replace=False))
                   for _ in range(len(data.items))],
    }))
    return ServingData(data, catalog)


__all__ = ["GENRE_LABELS", "ServingData", "make_serving_data"]
