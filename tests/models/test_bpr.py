import numpy as np
import pytest
from implicit.cpu.bpr import BayesianPersonalizedRanking

from sona.models.bpr import BPR, BPRConfig, training_matrix
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


class TestBPR(RecommenderContract):
    atol = 1e-4

    @staticmethod
    def make_model():
        return BPR(BPRConfig(n_factors=8, learning_rate=0.05, regularization=0.0, n_iter=50,
                             seed=5))


def _raw_config(uniform_negatives):
    return BPRConfig(n_factors=8, learning_rate=0.05, regularization=0.01, n_iter=30, seed=9,
                     uniform_negatives=uniform_negatives)


def _raw(user_items):
    raw = BayesianPersonalizedRanking(factors=8, learning_rate=0.05, regularization=0.01,
                                      iterations=30, num_threads=1, random_state=9)
    raw.fit(user_items, show_progress=False)
    return raw


def test_scores_equal_raw_implicit_including_bias():
    data = random_interactions(seed=4)
    model = BPR(_raw_config(0.0)).fit(data)
    user_items = (data.matrix() > 0).astype(np.float32)
    raw = _raw(user_items)
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


def test_uniform_negatives_equal_raw_implicit_on_padded_matrix():
    data = random_interactions(seed=4)
    model = BPR(_raw_config(0.8)).fit(data)
    padded = training_matrix(data.matrix(), 0.8)
    raw = _raw(padded)
    n = data.n_users
    np.testing.assert_allclose(model.user_factors_, raw.user_factors[:n, :-1], rtol=1e-6)
    np.testing.assert_allclose(model.item_factors_, raw.item_factors[:, :-1], rtol=1e-6)
    # the pseudo-users are never updated (every triple they draw is skipped): their factors
    # are still the initial ones, which a zero-epoch fit with the same seed reproduces
    init = BayesianPersonalizedRanking(factors=8, iterations=0, num_threads=1, random_state=9)
    init.fit(padded, show_progress=False)
    np.testing.assert_array_equal(raw.user_factors[n:], init.user_factors[n:])
    assert not np.array_equal(raw.user_factors[:n], init.user_factors[:n])
    assert model.user_factors_.shape == (n, 8)


def test_training_matrix_pads_with_all_item_rows():
    data = random_interactions(seed=1)
    x = data.matrix()
    padded = training_matrix(x, 0.9)
    n_pad = int(np.ceil(9 * x.nnz / x.shape[1]))
    assert padded.shape == (x.shape[0] + n_pad, x.shape[1])
    np.testing.assert_array_equal(padded[:x.shape[0]].toarray(), (x > 0).toarray())
    np.testing.assert_array_equal(padded[x.shape[0]:].toarray(), 1.0)
    # share of the pool implicit draws negatives from that is uniform over items
    assert 0.9 <= (padded.nnz - x.nnz) / padded.nnz < 0.91
    assert padded.indices.dtype == padded.indptr.dtype and padded.has_sorted_indices
    assert training_matrix(x, 0.0).shape == x.shape


def test_uniform_negatives_stop_pushing_popular_items_down():
    # popularity-proportional negatives penalise popular items; uniform ones do not
    data = random_interactions(n_users=150, n_items=200, n_interactions=4000, seed=2)
    popularity = np.asarray((data.matrix() > 0).sum(axis=0)).ravel()
    mean_pop = {}
    for share in (0.0, 0.9):
        model = BPR(BPRConfig(n_factors=16, learning_rate=0.05, n_iter=30,
                              uniform_negatives=share)).fit(data)
        recs = model.recommend(data.users.ids_array, k=10)
        mean_pop[share] = popularity[data.items.numbers(recs.ids.ravel())].mean()
    assert mean_pop[0.9] > 1.2 * mean_pop[0.0]


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
    with pytest.raises(ValueError, match="uniform_negatives"):
        BPR(BPRConfig(uniform_negatives=1.0)).fit(data)
    with pytest.raises(ValueError, match="verify_negative_samples"):
        BPR(BPRConfig(uniform_negatives=0.5, verify_negative_samples=False)).fit(data)
