import numpy as np
import scipy.sparse as sp

from sona.ranking.topk import topk


def test_float32_scores_rank_exactly_like_float64():
    # topk ranks float32 input in float32 (the overhead benchmark's hot path): same lists,
    # float64 output, ties broken by lower index in both precisions
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (40, 70)).astype(np.float32) / 4  # many exact ties
    scores[rng.random(scores.shape) < 0.05] = np.nan
    exclude = sp.random(40, 70, density=0.2, random_state=1, format="csr")
    idx32, top32 = topk(scores, 12, exclude=exclude)
    idx64, top64 = topk(scores.astype(np.float64), 12, exclude=exclude)
    np.testing.assert_array_equal(idx32, idx64)
    np.testing.assert_array_equal(top32, top64)
    assert top32.dtype == np.float64 and idx32.dtype == np.int64
    for row in range(40):
        pairs = list(zip((-top32[row]).tolist(), idx32[row].tolist(), strict=True))
        assert pairs == sorted(pairs)  # descending score, then ascending index
        assert not set(idx32[row].tolist()) & set(exclude[row].indices.tolist())


def test_integer_scores_are_ranked_in_float64():
    scores = np.array([[3, 1, 3, 2], [0, 5, 5, 5]], dtype=np.int64)
    idx, top = topk(scores, 3)
    np.testing.assert_array_equal(idx, [[0, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(top, [[3.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
