"""Synthetic MovieLens-shaped logs: exact size, no repeated pairs, seeded, power-law shape."""

from __future__ import annotations

import numpy as np
import pytest

from sona.data.synthetic import (
    SyntheticConfig,
    generate_frame,
    resolved_sizes,
    shape_stats,
    synthetic_interactions,
)


def test_size_uniqueness_and_determinism() -> None:
    cfg = SyntheticConfig(n_interactions=50_000, seed=7)
    frame = generate_frame(cfg)
    assert len(frame) == 50_000
    assert not frame.duplicated(["user_id", "item_id"]).any()
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert set(np.unique(frame["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    again = generate_frame(cfg)
    assert frame.equals(again)
    other = generate_frame(SyntheticConfig(n_interactions=50_000, seed=8))
    assert not frame.equals(other)


def test_movielens_like_shape() -> None:
    # ML-100K: 943 users x 1,682 items, >= 20 rows per user, median 65, top 10% of items
    # hold 43% of rows, item Gini 0.63; the generator's defaults land near those figures
    stats = shape_stats(generate_frame(SyntheticConfig(n_interactions=100_000)))
    n_users, n_items = resolved_sizes(SyntheticConfig(n_interactions=100_000))
    assert (stats["users"], stats["items"]) == (n_users, n_items) == (769, 1600)
    assert stats["user_min"] >= 20
    assert 40 <= stats["user_median"] <= 90
    assert stats["user_max"] >= 10 * stats["user_median"]  # heavy-tailed activity
    assert 0.35 <= stats["top10pct_item_share"] <= 0.55
    assert 0.45 <= stats["item_gini"] <= 0.75


def test_heavy_users_filled_exactly() -> None:
    # a tiny catalogue forces many repeats, so the exact Gumbel fill must complete users
    cfg = SyntheticConfig(n_interactions=5_000, n_users=20, n_items=500, min_per_user=100,
                          max_user_share=0.9, seed=3)
    frame = generate_frame(cfg)
    per_user = frame.groupby("user_id").size()
    assert len(frame) == 5_000 and per_user.min() >= 100 and per_user.max() <= 450
    assert not frame.duplicated(["user_id", "item_id"]).any()


def test_interactions_wrapper() -> None:
    data = synthetic_interactions(SyntheticConfig(n_interactions=3_000, seed=1))
    assert len(data) == 3_000
    assert data.matrix().nnz == 3_000


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (SyntheticConfig(n_interactions=0), "n_interactions"),
        (SyntheticConfig(n_interactions=100, n_users=10, min_per_user=20), "minimum exceeds"),
        (SyntheticConfig(n_interactions=1000, n_users=2, n_items=100), "cannot hold"),
    ],
)
def test_impossible_sizes(cfg: SyntheticConfig, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_frame(cfg)
