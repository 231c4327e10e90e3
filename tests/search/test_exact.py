"""ExactIndex: the brute-force reference must agree with a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest

from sona.errors import UnknownIdError
from sona.search import ExactIndex, ExactIndexConfig, VectorIndex


def _data(n: int = 200, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_matches_numpy_brute_force(metric: str) -> None:
    x, q = _data(), _data(5, seed=1)
    index = ExactIndex(ExactIndexConfig(metric=metric, max_block=300))  # forces several blocks
    index.add(np.arange(100, 300), x)
    recs = index.search(q, 7)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        expect = qn @ xn.T
    elif metric == "ip":
        expect = q @ x.T
    else:
        expect = -((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    top = np.argsort(-expect, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(recs.ids, top + 100)
    np.testing.assert_allclose(recs.scores, np.take_along_axis(expect, top, axis=1), rtol=1e-4,
                               atol=1e-4)
    assert isinstance(index, VectorIndex)


def test_exclude_shared_and_per_query() -> None:
    x = _data()
    index = ExactIndex()
    index.add(np.arange(200), x)
    # each item's nearest neighbour under cosine is itself
    self_recs = index.search(x[:3], 1)
    np.testing.assert_array_equal(self_recs.ids[:, 0], [0, 1, 2])
    per_query = index.search(x[:3], 5, exclude=np.array([[0], [1], [2]]))
    assert not np.any(per_query.ids == np.array([[0], [1], [2]]))
    shared = index.search(x[:3], 5, exclude=np.array([0, 1, 2, 999]))  # 999 is not indexed
    assert not np.isin(shared.ids, [0, 1, 2]).any()
    assert np.all(np.diff(shared.scores, axis=1) <= 0)


def test_string_ids_padding_and_save_load(tmp_path) -> None:
    x = _data(4)
    index = ExactIndex()
    index.add(np.array(["a", "b"], dtype=object), x[:2])
    index.add(np.array(["c", "d"], dtype=object), x[2:])  # a second batch appends
    recs = index.search(x[:1], 6)
    assert recs.ids[0, 0] == "a"
    assert list(recs.ids[0, 4:]) == ["", ""] and np.isnan(recs.scores[0, 4:]).all()
    index.save(tmp_path / "idx")
    back = ExactIndex.load(tmp_path / "idx")
    again = back.search(x[:1], 6)
    np.testing.assert_array_equal(again.ids, recs.ids)
    np.testing.assert_allclose(again.scores, recs.scores)
    assert len(back) == 4 and back.dim == 8
    np.testing.assert_allclose(back.vectors(["c"]), index.vectors(["c"]))
    with pytest.raises(UnknownIdError, match="'zz'"):
        back.vectors(["zz"])


def test_bad_input_errors() -> None:
    index = ExactIndex()
    index.add([1, 2], _data(2))
    with pytest.raises(ValueError, match="duplicate"):
        index.add([2], _data(1))
    with pytest.raises(ValueError, match="dimension 3"):
        index.search(np.zeros((1, 3), np.float32), 2)
    with pytest.raises(ValueError, match="NaN"):
        index.add([5], np.full((1, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(_data(1), 0)
    with pytest.raises(ValueError, match="unknown metric"):
        ExactIndex(ExactIndexConfig(metric="dot")).add([1], _data(1))  # type: ignore[arg-type]
    empty = ExactIndex().search(np.zeros((2, 4), np.float32), 3)
    assert empty.ids.shape == (2, 3) and (empty.ids == -1).all()
