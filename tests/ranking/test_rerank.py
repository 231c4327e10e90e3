import numpy as np
import pytest

from sona.ranking.rerank import exploration_rate, explore, minmax_rows, mmr, unit_rows

# 4-item toy: items 0 and 1 are duplicates, 2 is orthogonal, 3 sits between them
VECTORS = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
CANDS = np.array([[0, 1, 2, 3]])
REL = np.array([[1.0, 0.9, 0.5, 0.0]])


def test_mmr_known_answer_on_toy():
    # hand computation with λ = 0.7 (relevance already spans [0, 1]):
    # pick 0 (0.7·1); then 2 (0.35 - 0) beats 1 (0.63 - 0.3·1 = 0.33) and 3 (-0.3·0.7071);
    # then 1 (0.33) beats 3 (-0.2121); then 3
    idx, gains = mmr(CANDS, REL, VECTORS, 4, lambda_=0.7)
    assert idx.tolist() == [[0, 2, 1, 3]]
    np.testing.assert_allclose(gains[0], [0.7, 0.35, 0.33, -0.3 / np.sqrt(2)], atol=1e-12)


def test_mmr_lambda_one_is_relevance_order():
    rng = np.random.default_rng(0)
    rel = rng.random((7, 12))
    cands = np.argsort(rng.random((7, 12)), axis=1)
    idx, _ = mmr(cands, rel, rng.random((12, 5)), 12, lambda_=1.0)
    expected = np.take_along_axis(cands, np.argsort(-rel, axis=1, kind="stable"), axis=1)
    np.testing.assert_array_equal(idx, expected)


def test_mmr_lambda_zero_spreads_out_and_pads():
    cands = np.array([[0, 1, 2, -1]])
    rel = np.array([[1.0, 0.9, 0.1, np.nan]])
    idx, gains = mmr(cands, rel, VECTORS, 5, lambda_=0.0)
    # after item 0, duplicate 1 has similarity 1 and 2 has 0: pure diversity takes 2 first
    assert idx.tolist() == [[0, 2, 1, -1, -1]]
    assert np.isnan(gains[0, 3:]).all()


def test_mmr_batch_equals_rows_and_validates():
    rng = np.random.default_rng(1)
    cands = np.argsort(rng.random((5, 9)), axis=1)
    rel = rng.random((5, 9))
    vec = rng.random((9, 3))
    batch, _ = mmr(cands, rel, vec, 4)
    for i in range(5):
        one, _ = mmr(cands[i:i + 1], rel[i:i + 1], vec, 4)
        np.testing.assert_array_equal(one[0], batch[i])
    with pytest.raises(ValueError, match="lambda_"):
        mmr(cands, rel, vec, 4, lambda_=1.5)
    with pytest.raises(ValueError, match="indices"):
        mmr(cands + 100, rel, vec, 4)


def test_minmax_rows_constant_and_invalid():
    out = minmax_rows(np.array([[2.0, 2.0, np.nan], [1.0, 3.0, 2.0]]))
    np.testing.assert_array_equal(out[0, :2], [1.0, 1.0])
    assert np.isnan(out[0, 2])
    np.testing.assert_allclose(out[1], [0.0, 1.0, 0.5])


def test_exploration_rate_follows_spec_schedule():
    rates = exploration_rate([0, 100, 10_000])
    np.testing.assert_allclose(rates, [0.2, 0.2 * 0.995 ** 100, 0.05])


def test_explore_swaps_only_flipped_slots_with_unused_pool_items():
    idx = np.tile(np.arange(5), (50, 1))
    pool = np.tile(np.arange(5, 40), (50, 1))
    same = explore(idx, pool, 0.0, seed=1)
    np.testing.assert_array_equal(same, idx)
    out = explore(idx, pool, 0.5, seed=1)
    np.testing.assert_array_equal(out, explore(idx, pool, 0.5, seed=1))  # seeded
    changed = out != idx
    assert 0.3 < changed.mean() < 0.7
    assert (out[changed] >= 5).all()  # replacements come from the pool
    for row in out:
        assert len(set(row.tolist())) == 5  # never a duplicate
    everything = explore(idx, pool, 1.0, seed=2)
    assert (everything >= 5).all()


@pytest.mark.parametrize("n_queries", [1, 7])
def test_precomputed_unit_vectors_give_the_same_bits(n_queries):
    # issue 12: the served pipeline normalises its content vectors once; every list, gain
    # and tie must be bit for bit what normalising each pool gives
    rng = np.random.default_rng(12)
    vectors = rng.normal(size=(300, 24)).astype(np.float32)
    vectors[5] = 0.0  # a zero row stays zero
    cand = np.stack([rng.choice(300, 60, replace=False) for _ in range(n_queries)])
    cand[0, -3:] = -1
    cand[0, 0] = 5
    rel = rng.random(cand.shape)
    rel[-1, 2] = np.nan
    for lam in (0.0, 0.4, 0.7, 1.0):
        plain = mmr(cand, rel, vectors, 20, lambda_=lam)
        cached = mmr(cand, rel, vectors, 20, lambda_=lam, unit_vectors=unit_rows(vectors))
        assert plain[0].tobytes() == cached[0].tobytes()
        assert plain[1].tobytes() == cached[1].tobytes()
    with pytest.raises(ValueError, match="rows"):
        mmr(cand, rel, vectors, 5, unit_vectors=unit_rows(vectors[:10]))
