"""FaissIndex: recall of the approximate kinds against ExactIndex on seeded random data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sona.search import ExactIndex, ExactIndexConfig, FaissIndex, FaissIndexConfig

# Clustered data (64 Gaussian blobs in 32-d), like item factors; uniform random vectors
# in high dimension have no neighbour structure and every ANN method degrades on them.
N, D, Q, K = 4000, 32, 100, 10
#: recall@10 thresholds vs exact search, stated per kind (measured 1.0 for every kind and metric)
RECALL_MIN = {"flat": 0.999, "ivf": 0.95, "hnsw": 0.95}


def _clustered(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, D))
    x = centres[rng.integers(0, 64, N)] + 0.35 * rng.normal(size=(N, D))
    q = centres[rng.integers(0, 64, Q)] + 0.35 * rng.normal(size=(Q, D))
    return x.astype(np.float32), q.astype(np.float32)


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    pairs = zip(approx, exact, strict=True)
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in pairs]))


CONFIGS = {
    "flat": FaissIndexConfig(kind="flat"),
    "ivf": FaissIndexConfig(kind="ivf", nlist=64, nprobe=8),
    "hnsw": FaissIndexConfig(kind="hnsw", hnsw_m=16, ef_search=64, ef_construction=64),
}


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_recall_against_exact(kind: str, metric: str) -> None:
    x, q = _clustered()
    ids = np.arange(N) * 3 + 7  # ids are not positions
    exact = ExactIndex(ExactIndexConfig(metric=metric))
    exact.add(ids, x)
    approx = FaissIndex(dataclasses.replace(CONFIGS[kind], metric=metric))
    approx.add(ids, x)
    truth, got = exact.search(q, K), approx.search(q, K)
    assert _recall(got.ids, truth.ids) >= RECALL_MIN[kind]
    assert np.isin(got.ids, ids).all()
    assert np.all(np.diff(got.scores, axis=1) <= 1e-6)
    if kind == "flat":  # exact faiss gives the reference scores too
        np.testing.assert_allclose(got.scores, truth.scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_save_load_round_trip(kind: str, tmp_path) -> None:
    x, q = _clustered(1)
    index = FaissIndex(CONFIGS[kind])
    index.add(np.array([f"item{i}" for i in range(N)], dtype=object), x)
    before = index.search(q, K)
    index.save(tmp_path / kind)
    back = FaissIndex.load(tmp_path / kind)
    after = back.search(q, K)
    assert back.config == index.config and len(back) == N and back.dim == D
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_allclose(after.scores, before.scores)
    assert str(after.ids[0, 0]).startswith("item")


def test_exclude_and_padding() -> None:
    x, _ = _clustered(2)
    index = FaissIndex(CONFIGS["hnsw"])
    index.add(np.arange(N), x)
    # similar items: every query item is its own nearest neighbour, excluded per row
    recs = index.search(x[:20], K, exclude=np.arange(20)[:, None])
    assert not (recs.ids == np.arange(20)[:, None]).any()
    assert not np.isnan(recs.scores).any()
    shared = index.search(x[:5], K, exclude=np.arange(10))
    assert not np.isin(shared.ids, np.arange(10)).any()
    small = FaissIndex(FaissIndexConfig(kind="flat"))
    small.add([1, 2, 3], x[:3])
    padded = small.search(x[:2], 5, exclude=np.array([[1], [2]]))
    assert (padded.ids[:, 2:] == -1).all() and np.isnan(padded.scores[:, 2:]).all()
    assert set(padded.ids[0, :2]) == {2, 3} and set(padded.ids[1, :2]) == {1, 3}


def test_errors() -> None:
    x, _ = _clustered()
    with pytest.raises(ValueError, match="nlist=64 needs at least 64"):
        FaissIndex(CONFIGS["ivf"]).add(np.arange(10), x[:10])
    with pytest.raises(ValueError, match="unknown faiss index kind"):
        FaissIndex(FaissIndexConfig(kind="lsh")).add([1], x[:1])  # type: ignore[arg-type]
    index = FaissIndex(CONFIGS["flat"])
    index.add([1, 2], x[:2])
    with pytest.raises(ValueError, match="duplicate"):
        index.add([2], x[:1])
    assert len(index) == 2  # a failed add leaves the index unchanged
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.zeros((1, 3), np.float32), 1)


def test_search_params_change_recall_without_rebuild() -> None:
    x, q = _clustered(4)
    exact = ExactIndex()
    exact.add(np.arange(N), x)
    truth = exact.search(q, K).ids
    index = FaissIndex(FaissIndexConfig(kind="ivf", nlist=64, nprobe=1))
    index.add(np.arange(N), x)
    low = _recall(index.search(q, K).ids, truth)
    index.set_search_params(nprobe=64)  # every cell: exhaustive, so exact
    assert index.config.nprobe == 64
    assert _recall(index.search(q, K).ids, truth) == 1.0 >= low
    with pytest.raises(ValueError, match="ef_search must be >= 1"):
        index.set_search_params(ef_search=0)
