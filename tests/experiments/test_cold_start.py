"""Cold-start evaluation on a synthetic MovieLens where taste follows genre and occupation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog, Interactions
from sona.data.sources import MovieLens
from sona.experiments.cold_start import ColdEvalConfig, evaluate_cold_items, evaluate_cold_users

GENRES = ["Comedy", "Horror", "Western", "Drama"]


def _movielens(seed: int = 0) -> MovieLens:
    """Users of group g (age band and occupation g) watch mostly items of genre g; titles
    say the genre."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(120):
        g = u % 4
        own = np.arange(g * 30, (g + 1) * 30)
        items = np.r_[rng.choice(own, 14, replace=False), rng.choice(120, 2, replace=False)]
        for t, i in enumerate(np.unique(items)):
            rows.append((u, int(i), 4.0, 8.8e8 + u * 1e4 + t * 60))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    words = {"Comedy": "funny laugh", "Horror": "scary blood", "Western": "cowboy horse",
             "Drama": "tears family"}
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": np.arange(120), "year": 1990 + np.arange(120) % 9,
        "title": [f"{words[GENRES[i // 30]]} {i}" for i in range(120)],
        "genres": [(GENRES[i // 30],) for i in range(120)]}))
    users = pd.DataFrame({"user_id": np.arange(120), "age": 19 + 10 * (np.arange(120) % 4),
                          "gender": ["M", "F"] * 60,
                          "occupation": [f"job{u % 4}" for u in range(120)],
                          "zip_code": ["12345"] * 120})
    return MovieLens(Interactions.from_frame(frame), catalog, users, pd.DataFrame(),
                     pd.DataFrame(), {})


def test_cold_user_tiers_use_demographics_and_genres():
    out = evaluate_cold_users(_movielens(), ColdEvalConfig(fraction=0.2, seed=1))
    assert set(out) == {"popularity", "trending", "demographic", "signup_genres"}
    assert out["demographic"]["n_users"] == 24
    assert out["signup_genres"]["tier_share"] == 1.0
    # age band (SPEC's first segment attribute) and genres reveal the group; popularity not
    assert out["demographic"]["ndcg"] > out["popularity"]["ndcg"] + 0.3
    assert out["signup_genres"]["ndcg"] > out["popularity"]["ndcg"] + 0.1


def test_cold_items_ranked_by_content_beat_random():
    out = evaluate_cold_items(_movielens(), ColdEvalConfig(fraction=0.2, seed=2,
                                                           encoders=("tfidf",)))
    assert set(out) == {"genres", "tfidf", "random"}
    assert out["genres"]["n_cold_items"] == 24
    assert out["genres"]["ndcg"] > out["random"]["ndcg"] + 0.2
    assert out["tfidf"]["ndcg"] > out["random"]["ndcg"] + 0.2
    with pytest.raises(ValueError, match="encoders|kind"):
        evaluate_cold_items(_movielens(), ColdEvalConfig(encoders=("bert",)))  # type: ignore
