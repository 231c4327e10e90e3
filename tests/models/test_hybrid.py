import numpy as np
import pytest

from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.generators import GeneratorSpec
from sona.models.hybrid import Hybrid, HybridConfig
from sona.models.registry import build_model
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions

GENS = [GeneratorSpec("als", "als", {"n_factors": 8, "n_iter": 5, "regularization": 1.0,
                                     "n_threads": 1}),
        GeneratorSpec("ease", "ease", {"l2": 5.0}),
        GeneratorSpec("pop", "popularity")]


class TestHybrid(RecommenderContract):
    @staticmethod
    def make_model():
        return Hybrid(HybridConfig(generators=GENS, n_candidates=20, weight_step=0.1))


def test_weights_are_fitted_on_validation_and_sum_to_one():
    data = random_interactions(seed=5)
    model = Hybrid(HybridConfig(generators=GENS, n_candidates=20, weight_step=0.1)).fit(data)
    w = model.weights
    assert set(w) == {"als", "ease", "pop"}
    assert sum(w.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in w.values())
    # the blend is never worse on validation than the best single generator
    blend, *singles = model.validation_ndcg_
    assert blend >= max(singles) - 1e-12
    # zero-weight generators are dropped after fitting
    assert len(model.generators_.models) == sum(v > 0 for v in w.values())
    report = model.fit_metrics()
    assert report["weight.als"] == w["als"]
    assert report["validation_ndcg_at_10.blend"] == blend


def test_fixed_weights_reproduce_a_single_generator():
    data = random_interactions(seed=6)
    ease = build_model("ease", {"l2": 5.0}).fit(data)
    hybrid = Hybrid(HybridConfig(generators=GENS, weights=[0.0, 2.0, 0.0],
                                 n_candidates=0)).fit(data)
    users = data.users.ids_array[:15]
    np.testing.assert_array_equal(hybrid.recommend(users, k=10).ids,
                                  ease.recommend(users, k=10).ids)
    assert np.isnan(hybrid.validation_ndcg_).all()


def test_pool_ranks_before_everything_else():
    data = random_interactions(seed=7)
    model = Hybrid(HybridConfig(generators=GENS[:2], weights=[1, 1], n_candidates=3)).fit(data)
    recs = model.recommend(data.users.ids_array[:4], k=20)
    # at most 3 + 3 pooled items score above 1, all others below
    above = (recs.scores > 1.0).sum(axis=1)
    assert (above >= 3).all() and (above <= 6).all()
    assert np.all(recs.scores[recs.valid] > 0)


def test_mmr_recommend_is_diverse_and_sorted(tmp_path):
    data = random_interactions(seed=8)
    plain = Hybrid(HybridConfig(generators=GENS[:2], weights=[1, 1])).fit(data)
    diverse = Hybrid(HybridConfig(generators=GENS[:2], weights=[1, 1], mmr_lambda=0.3,
                                  mmr_pool=30)).fit(data)
    users = data.users.ids_array[:10]
    a, b = plain.recommend(users, k=10), diverse.recommend(users, k=10)
    assert (np.diff(b.scores, axis=1) <= 1e-12).all()
    from sona.metrics import intra_list_diversity

    vectors = diverse.item_vectors()
    ild = [intra_list_diversity(diverse.items_.numbers(r.ids.ravel()).reshape(r.ids.shape),
                                vectors).mean() for r in (a, b)]
    assert ild[1] > ild[0]
    # λ = 1 keeps the blend's order
    same = Hybrid(HybridConfig(generators=GENS[:2], weights=[1, 1], mmr_lambda=1.0)).fit(data)
    np.testing.assert_array_equal(same.recommend(users, k=10).ids, a.ids)
    diverse.save(tmp_path / "h")
    loaded = Recommender.load(tmp_path / "h")
    np.testing.assert_array_equal(loaded.recommend(users, k=10).ids, b.ids)


def test_bad_configs_fail_before_training():
    data = random_interactions(seed=9)
    with pytest.raises(ConfigError, match=r"generators\[1\].params.l3"):
        Hybrid(HybridConfig(generators=[GENS[0], GeneratorSpec("e", "ease", {"l3": 1})])).fit(
            data)
    with pytest.raises(ConfigError, match="used twice"):
        Hybrid(HybridConfig(generators=[GENS[0], GENS[0]])).fit(data)
    with pytest.raises(ConfigError, match="weights"):
        Hybrid(HybridConfig(generators=GENS, weights=[1.0])).fit(data)
    with pytest.raises(ConfigError, match="ensemble"):
        Hybrid(HybridConfig(generators=[GeneratorSpec("h", "hybrid")])).fit(data)
    model = build_model("hybrid", {"generators": [{"name": "a", "model": "ease"}],
                                   "mmr_lambda": 0.7})
    assert model.config.generators[0].model == "ease"
