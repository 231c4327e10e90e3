import numpy as np
import pytest
from implicit.cpu.bpr import BayesianPersonalizedRanking

from sona.models.bpr import BPR, BPRConfig
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


class TestBPR(RecommenderContract):
    atol = 1e-4

    @staticmethod
    def make_model():
        return BPR(BPRConfig(n_factors=8, learning_rate=0.05, regularization=0.0, n_iter=50,
                             seed=5))


def _raw(data, **kw):
    raw = BayesianPersonalizedRanking(factors=8, learning_rate=0.05, regularization=0.01,
                                      iterations=30, num_threads=1, random_state=9, **kw)
    user_items = (data.matrix() > 0).astype(np.float32)
    raw.fit(user_items, show_progress=False)
    return raw, user_items


def test_scores_equal_raw_implicit_including_bias():
    data = random_interactions(seed=4)
    model = BPR(BPRConfig(n_factors=8, learning_rate=0.05, regularization=0.01, n_iter=30,
                          seed=9)).fit(data)
    raw, user_items = _raw(data)
    # implicit appends the item bias as an extra column (user side fixed at 1)
    assert raw.item_factors.shape[1] == 9
    np.testing.assert_array_equal(raw.user_factors[:, -1], 1.0)
    np.testing.assert_allclose(model.item_bias_, raw.item_factors[:, -1], rtol=1e-6)
    assert np.abs(model.item_bias_).max() > 1e-3  # the bias is learned, not left at zero
    users = np.arange(data.n_users)
    ids, scores = raw.recommend(users, user_items[users], N=10)
    recs = model.recommend(data.users.ids(users), k=10)
    np.testing.assert_array_equal(recs.ids, data.items.ids(ids))
    np.testing.assert_allclose(recs.scores, scores, rtol=1e-5, atol=1e-5)


def test_score_pairs_include_bias():
    data = random_interactions(seed=4)
    model = BPR(BPRConfig(n_factors=8, n_iter=10, seed=1)).fit(data)
    u, i = data.users.ids_array[:4], data.items.ids_array[:4]
    ui, ii = data.users.numbers(u), data.items.numbers(i)
    expected = (model.user_factors_[ui] * model.item_factors_[ii]).sum(1) + model.item_bias_[ii]
    np.testing.assert_allclose(model.score(u, i), expected, rtol=1e-5)


def test_bad_config_raises():
    data = random_interactions(seed=1)
    with pytest.raises(ValueError, match="n_threads"):
        BPR(BPRConfig(n_threads=0)).fit(data)
    with pytest.raises(ValueError, match="learning_rate"):
        BPR(BPRConfig(learning_rate=0.0)).fit(data)
