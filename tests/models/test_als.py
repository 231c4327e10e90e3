import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares

from sona.models.als import ALS, ALSConfig, confidence
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


def _config(**kw):
    # implicit's checkerboard recipe (few factors, no regularisation); 2 factors and alpha 10
    # rank item i first for all 50 users under every seed 0-7 tried (3 factors missed 1 of 50)
    base = dict(n_factors=2, regularization=0.0, n_iter=15, alpha=10.0, seed=7, n_threads=1)
    base.update(kw)
    return ALSConfig(**base)


class TestALS(RecommenderContract):
    atol = 1e-4

    @staticmethod
    def make_model():
        return ALS(_config())


def test_confidence_is_one_plus_alpha_r():
    data = random_interactions(seed=2)
    c = confidence(data.matrix(), 40.0)
    assert c.dtype == np.float32
    np.testing.assert_allclose(np.unique(c.data), [41.0])


def test_scores_equal_raw_implicit():
    data = random_interactions(seed=4)
    cfg = ALSConfig(n_factors=8, regularization=0.05, n_iter=10, alpha=10.0, seed=3,
                    n_threads=1)
    model = ALS(cfg).fit(data)
    raw = AlternatingLeastSquares(factors=8, regularization=0.05, alpha=1.0, iterations=10,
                                  random_state=3, num_threads=1)
    user_items = confidence(data.matrix(), 10.0)
    raw.fit(user_items, show_progress=False)
    np.testing.assert_allclose(model.user_factors_, raw.user_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.item_factors_, raw.item_factors, rtol=1e-5, atol=1e-6)
    users = np.arange(data.n_users)
    ids, scores = raw.recommend(users, user_items[users], N=10)
    recs = model.recommend(data.users.ids(users), k=10)
    np.testing.assert_array_equal(recs.ids, data.items.ids(ids))
    np.testing.assert_allclose(recs.scores, scores, rtol=1e-5, atol=1e-5)


def test_similar_items_are_factor_cosines():
    data = random_interactions(seed=4)
    model = ALS(_config(n_factors=6, regularization=0.1)).fit(data)
    v = model.item_factors_ / np.linalg.norm(model.item_factors_, axis=1, keepdims=True)
    sims = model.similar_items(data.items.ids_array[:1], k=3)
    cos = v[0] @ v.T
    cos[0] = -np.inf
    top = np.argsort(-cos)[:3]
    np.testing.assert_array_equal(sims.ids[0], data.items.ids(top))
    np.testing.assert_allclose(sims.scores[0], cos[top], rtol=1e-5)



def test_similar_items_keep_the_unit_factors_until_the_factors_change():
    # issue 12: the unit rows are computed once per factor matrix, with the same bits
    from sona.models.als import _unit_rows

    data = random_interactions(seed=4)
    model = ALS(_config(n_factors=6, regularization=0.1)).fit(data)
    idx = np.arange(3)
    first = model._similar_items(idx)
    assert np.array_equal(first, _unit_rows(model.item_factors_)[idx]
                          @ _unit_rows(model.item_factors_).T)
    assert model._unit_factors() is model._unit_factors()
    model.item_factors_ = model.item_factors_[::-1].copy()  # a new matrix: recomputed
    flipped = _unit_rows(model.item_factors_)
    assert np.array_equal(model._similar_items(idx), flipped[idx] @ flipped.T)
    assert not np.array_equal(model._similar_items(idx), first)

def test_n_threads_do_not_change_result():
    data = random_interactions(seed=6)
    a = ALS(_config()).fit(data)
    b = ALS(_config(n_threads=2)).fit(data)
    np.testing.assert_allclose(a.item_factors_, b.item_factors_, rtol=1e-6, atol=1e-7)


def test_bad_config_raises():
    data = random_interactions(seed=1)
    with pytest.raises(ValueError, match="n_factors"):
        ALS(_config(n_factors=0)).fit(data)
    with pytest.raises(ValueError, match="alpha"):
        ALS(_config(alpha=-1.0)).fit(data)
