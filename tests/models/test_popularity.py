import numpy as np

from sona.models.popularity import Popularity, PopularityConfig
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


class TestPopularity(RecommenderContract):
    @staticmethod
    def make_model():
        return Popularity(PopularityConfig())


def test_popularity_ranks_by_distinct_users():
    data = random_interactions(seed=1)
    model = Popularity().fit(data)
    counts = data.frame.groupby("item_id")["user_id"].nunique().sort_values(ascending=False)
    recs = model.recommend(data.users.ids_array[:1], k=1, exclude_seen=False)
    assert recs.scores[0, 0] == counts.iloc[0]
    np.testing.assert_array_equal(model.score([data.users.id(0)], [counts.index[0]]),
                                  [counts.iloc[0]])
