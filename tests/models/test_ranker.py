import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.generators import GeneratorSpec
from sona.models.ranker import Ranker, RankerConfig
from sona.models.side import ItemSideData
from sona.ranking.context import Context
from sona.testing.contracts import RecommenderContract

SMALL = dict(n_candidates=15, n_estimators=15, min_data_in_leaf=20, num_leaves=4)
GENS = [GeneratorSpec("ease", "ease", {"l2": 5.0}), GeneratorSpec("pop", "popularity")]


class TestRanker(RecommenderContract):
    @staticmethod
    def make_model():
        return Ranker(RankerConfig(generators=GENS, side_source=None, context_features=True,
                                   **SMALL))


def _genre_world(seed: int = 0):
    """Users of group g interact only with items of genre g; popularity is uninformative."""
    rng = np.random.default_rng(seed)
    genres = ["Comedy", "Horror", "Western"]
    rows = []
    for u in range(60):
        g = u % 3
        own = np.arange(g * 20, (g + 1) * 20)
        for i in rng.choice(own, size=12, replace=False):
            rows.append((1000 + u, 5000 + int(i), 4.0, float(len(rows))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": 5000 + np.arange(60), "title": [f"m{i}" for i in range(60)],
        "year": 1990 + np.arange(60) % 7, "genres": [(genres[i // 20],) for i in range(60)]}))
    return Interactions.from_frame(frame), catalog


def test_ranker_learns_genre_affinity_over_popularity():
    data, catalog = _genre_world()
    config = RankerConfig(generators=[GeneratorSpec("pop", "popularity")], n_candidates=60,
                          n_estimators=40, min_data_in_leaf=20, num_leaves=4,
                          user_features=False, side_source=None)
    model = Ranker(config, side=ItemSideData(catalog)).fit(data)
    users = data.users.ids_array
    recs = model.recommend(users, k=5)
    group = (users - 1000) % 3
    own = (recs.ids - 5000) // 20 == group[:, None]
    assert own.mean() > 0.95  # popularity alone would give about 1/3
    assert model.importance["user_item_genre_affinity"] == max(model.importance.values())
    assert model.fit_metrics()["importance.pop_score"] == model.importance["pop_score"]


def test_feature_names_and_saved_booster_is_text(tmp_path):
    data, catalog = _genre_world(1)
    users_side = pd.DataFrame({"user_id": 1000 + np.arange(60), "age": 20 + np.arange(60),
                               "gender": ["F", "M"] * 30, "occupation": ["a", "b", "c"] * 20,
                               "zip_code": ["12345", "9abcd", "X1"] * 20})
    model = Ranker(RankerConfig(generators=GENS, context_features=True, side_source=None,
                                **SMALL), side=ItemSideData(catalog),
                   user_side=users_side).fit(data)
    names = model.feature_names_
    assert names[:4] == ["ease_score", "ease_rank_pct", "pop_score", "pop_rank_pct"]
    for expected in ("user_activity_pct", "age", "gender_f", "occupation", "zip_region",
                     "item_popularity_pct", "item_year", "genre_comedy",
                     "user_item_genre_affinity", "context_hour_cosine",
                     "context_weekday_cosine"):
        assert expected in names
    model.save(tmp_path / "r")
    with np.load(tmp_path / "r" / "arrays.npz", allow_pickle=False) as npz:
        booster = npz["state__booster"]
    assert booster.dtype == np.uint8 and booster.tobytes().startswith(b"tree")
    loaded = Recommender.load(tmp_path / "r")
    users = data.users.ids_array[:10]
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids,
                                  model.recommend(users, k=5).ids)
    # a request context replaces the users' hour habits (one-hot hour) and still ranks
    in_ctx = model.recommend_in_context(users, Context(hour=20, weekday=4), k=5)
    assert in_ctx.ids.shape == (10, 5) and in_ctx.valid.all()


def test_ranker_config_errors():
    data, _ = _genre_world(2)
    with pytest.raises(ConfigError, match="n_candidates"):
        Ranker(RankerConfig(generators=GENS, n_candidates=0, side_source=None)).fit(data)
    with pytest.raises(ConfigError, match=r"ranker.generators\[0\].model"):
        Ranker(RankerConfig(generators=[GeneratorSpec("x", "nope")], side_source=None)).fit(
            data)
