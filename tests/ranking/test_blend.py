import numpy as np
import pytest
import scipy.sparse as sp

from sona.metrics import ndcg_at_k
from sona.ranking.blend import (
    blend_scores,
    fit_blend_weights,
    ndcg_from_scores,
    normalize_scores,
    pool_candidates,
)
from sona.ranking.topk import topk


def test_zscore_uses_eligible_items_only():
    scores = np.array([[1.0, 2.0, 3.0, 100.0]])
    seen = sp.csr_matrix(np.array([[0, 0, 0, 1]]))
    z = normalize_scores(scores, "zscore", exclude=seen)
    std = np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(z[0], (scores[0] - 2.0) / std)  # the seen item keeps a value


def test_minmax_rank_and_constant_rows():
    scores = np.array([[4.0, 2.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    np.testing.assert_allclose(normalize_scores(scores, "minmax")[0], [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(normalize_scores(scores, "minmax")[1], 0.0)
    np.testing.assert_allclose(normalize_scores(scores, "rank")[0], [1.0, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(normalize_scores(scores, "zscore")[1], 0.0)
    assert np.isnan(normalize_scores(np.array([[1.0, np.nan]]), "zscore")[0, 1])
    with pytest.raises(ValueError, match="normalization"):
        normalize_scores(scores, "softmax")  # type: ignore[arg-type]


def test_pool_is_union_of_top_n_without_seen():
    a = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]]))
    pool = pool_candidates([a, b], 2, exclude=seen)
    assert pool.tolist() == [[False, True, True, True, True]]
    assert pool_candidates([a], 0).all()


def test_blend_is_weighted_sum():
    a, b = np.array([[1.0, 2.0]]), np.array([[3.0, np.nan]])
    out = blend_scores([a, b], [0.25, 0.75])
    assert out[0, 0] == pytest.approx(0.25 + 2.25)
    assert np.isnan(out[0, 1])


def test_ndcg_from_scores_matches_sona_metrics():
    rng = np.random.default_rng(0)
    scores = rng.random((30, 40))
    rel = sp.csr_matrix(rng.random((30, 40)) < 0.15)
    n_rel = np.asarray(rel.sum(axis=1)).ravel() + (np.arange(30) % 3)  # some unknown positives
    ours = ndcg_from_scores(scores, rel, n_rel, 10)
    idx, _ = topk(scores, 10)
    # sona.metrics with the unknown positives as ids outside the columns
    relevant = [set(np.flatnonzero(rel[u].toarray()[0]).tolist())
                | {1000 + j for j in range(u % 3)} for u in range(30)]
    np.testing.assert_allclose(ours, ndcg_at_k(idx, relevant, 10), equal_nan=True)


def test_fit_blend_weights_finds_the_informative_generator():
    rng = np.random.default_rng(1)
    truth = rng.random((200, 60)) < 0.1
    signal = truth + rng.normal(0, 0.6, truth.shape)  # noisy truth
    noise = rng.normal(0, 1, truth.shape)
    rel = sp.csr_matrix(truth)
    n_rel = truth.sum(axis=1)
    mats = [normalize_scores(noise), normalize_scores(signal)]
    weights, value = fit_blend_weights(mats, rel, n_rel, k=10, step=0.1)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[1] >= 0.8
    single = np.nanmean(ndcg_from_scores(mats[1], rel, n_rel, 10)[n_rel > 0])
    assert value >= single - 1e-12  # never worse than the best vertex


def test_fit_blend_weights_combines_complementary_halves():
    # generator A knows items 0-29, generator B items 30-59: a blend beats either alone
    rng = np.random.default_rng(2)
    truth = rng.random((300, 60)) < 0.15
    a = np.where(np.arange(60) < 30, truth + rng.normal(0, 0.3, truth.shape), 0.0)
    b = np.where(np.arange(60) >= 30, truth + rng.normal(0, 0.3, truth.shape), 0.0)
    rel, n_rel = sp.csr_matrix(truth), truth.sum(axis=1)
    weights, value = fit_blend_weights([normalize_scores(a), normalize_scores(b)], rel, n_rel,
                                       k=10, step=0.05)
    assert 0.3 <= weights[0] <= 0.7
    alone = max(np.nanmean(ndcg_from_scores(normalize_scores(m), rel, n_rel, 10)[n_rel > 0])
                for m in (a, b))
    assert value > alone + 0.05
