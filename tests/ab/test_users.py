"""Synthetic ML-100K users and their click model."""

from __future__ import annotations

import numpy as np
import pytest

from sona.ab.users import SyntheticUsers, examination
from sona.data.sources import MovieLens


def test_population_is_seeded_and_bounded(ml100k: MovieLens) -> None:
    a = SyntheticUsers.from_movielens(ml100k, 300, seed=3)
    b = SyntheticUsers.from_movielens(ml100k, 300, seed=3)
    assert np.array_equal(a.activity, b.activity) and list(a.base_users) == list(b.base_users)
    assert a.user_ids[:2] == ["sim-0", "sim-1"]
    assert a.affinity.min() >= 0.0 and np.allclose(a.affinity.max(axis=1), 1.0)
    assert 0.2 < a.activity.min() and a.activity.max() < 8.0
    assert all(len(liked) > 0 for liked in a.liked[:50])
    with pytest.raises(ValueError, match="at least 1"):
        SyntheticUsers.from_movielens(ml100k, 0)


def test_click_model(ml100k: MovieLens) -> None:
    users = SyntheticUsers.from_movielens(ml100k, 50, seed=4)
    items = list(ml100k.interactions.items.ids_array[:10])
    base = users.click_probabilities(0, items)
    lifted = users.click_probabilities(0, items, lift=1.05)
    assert base.max() < 0.95 and np.allclose(lifted, 1.05 * base)  # the uplift is exact
    assert np.all(np.diff(examination(np.arange(10))) < 0)
    assert users.relevance(0, ["not-a-movie"])[0] == users.floor
    fav = int(np.argmax(users.affinity[0]))
    genres = users.item_genres
    in_fav = [i for i in items if genres[users.item_row[str(i)], fav]]
    others = [i for i in ml100k.interactions.items.ids_array
              if genres[users.item_row[str(i)]].any()
              and users.affinity[0, genres[users.item_row[str(i)]]].max() == 0]
    if in_fav and others:
        assert users.relevance(0, in_fav[:1])[0] > users.relevance(0, others[:1])[0]
