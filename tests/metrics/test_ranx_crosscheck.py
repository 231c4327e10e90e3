"""Cross-check sona.metrics against ranx on random runs (the only module importing ranx).

ranx compiles its metrics with numba on first use in a process, so all ranx use lives here.
Findings these tests pin down:

- ranx ``map@k`` divides by the number of relevant items (TREC; our ``normalize="relevant"``),
  not by ``min(k, |R|)``; our ``"min_k"`` is checked against a hand-written reference.
- ranx ``ndcg`` uses the gains as given (Järvelin & Kekäläinen), which is our
  ``graded=True``; ranx ``ndcg_burges`` uses ``2^g - 1``, which we match by passing
  transformed gains. With binary relevance the two agree.
- ranx scores a query with no relevant item 0; we return NaN, so such users are left out
  of the comparison and checked separately.
"""

from __future__ import annotations

import numpy as np
import pytest

ranx = pytest.importorskip("ranx")

# numba compilation of ranx takes 15-90 s in a fresh process (it is cached afterwards)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:unsafe cast from uint64 to int64"),
]

from sona.metrics import (  # noqa: E402
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from sona.types import PAD_ID  # noqa: E402

N_USERS = 300
N_ITEMS = 60
LENGTH = 20
KS = (1, 5, 10, 20)
TOL = 1e-9


def _random_batch(seed: int) -> tuple[np.ndarray, list[dict[int, int]]]:
    """Distinct-item lists (10% padded short) and graded relevance (gains 1..4; 5% empty)."""
    rng = np.random.default_rng(seed)
    rec = np.full((N_USERS, LENGTH), PAD_ID, dtype=np.int64)
    relevant: list[dict[int, int]] = []
    for u in range(N_USERS):
        n_real = LENGTH if rng.random() > 0.1 else int(rng.integers(1, LENGTH))
        rec[u, :n_real] = rng.choice(N_ITEMS, size=n_real, replace=False) + 1000
        n_rel = 0 if rng.random() < 0.05 else int(rng.integers(1, 30))
        items = rng.choice(N_ITEMS, size=n_rel, replace=False) + 1000
        relevant.append({int(i): int(g) for i, g in zip(items, rng.integers(1, 5, n_rel),
                                                        strict=True)})
    return rec, relevant


def _ranx_scores(rec: np.ndarray, relevant: list[dict[int, int]], metrics: list[str],
                 users: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user ranx scores for ``users``; run scores strictly descending (no ties)."""
    qrels = ranx.Qrels({f"u{u}": {f"d{i}": g for i, g in relevant[u].items()} for u in users})
    run = ranx.Run({f"u{u}": {f"d{i}": float(LENGTH - r) for r, i in enumerate(rec[u])
                              if i != PAD_ID} for u in users})
    ranx.evaluate(qrels, run, metrics, save_results_in_run=True)
    return {m: np.array([run.scores[m][f"u{u}"] for u in users]) for m in metrics}


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, list[dict[int, int]], np.ndarray]:
    rec, relevant = _random_batch(seed=20241126)
    judged = np.array([u for u in range(N_USERS) if relevant[u]])
    assert len(judged) >= 200
    return rec, relevant, judged


@pytest.fixture(scope="module")
def ranx_binary(batch) -> dict[str, np.ndarray]:
    rec, relevant, users = batch
    binary = [dict.fromkeys(r, 1) for r in relevant]
    names = ["precision", "recall", "ndcg", "ndcg_burges", "map", "mrr", "hit_rate"]
    return _ranx_scores(rec, binary, [f"{m}@{k}" for m in names for k in KS], users)


@pytest.fixture(scope="module")
def ranx_graded(batch) -> dict[str, np.ndarray]:
    rec, relevant, users = batch
    return _ranx_scores(rec, relevant, [f"{m}@{k}" for m in ("ndcg", "ndcg_burges") for k in KS],
                        users)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(precision_at_k, "precision"), (recall_at_k, "recall"), (ndcg_at_k, "ndcg"),
     (ndcg_at_k, "ndcg_burges"), (map_at_k, "map"), (mrr_at_k, "mrr"),
     (hit_rate_at_k, "hit_rate")],
)
def test_binary_metrics_equal_ranx(batch, ranx_binary, ours, theirs: str, k: int) -> None:
    rec, relevant, users = batch
    values = ours(rec[users], [set(relevant[u]) for u in users], k)
    np.testing.assert_allclose(values, ranx_binary[f"{theirs}@{k}"], rtol=0, atol=TOL)


@pytest.mark.parametrize("k", KS)
def test_graded_ndcg_equals_ranx(batch, ranx_graded, k: int) -> None:
    rec, relevant, users = batch
    linear = ndcg_at_k(rec[users], [relevant[u] for u in users], k, graded=True)
    np.testing.assert_allclose(linear, ranx_graded[f"ndcg@{k}"], rtol=0, atol=TOL)
    exponential = [{i: 2.0**g - 1 for i, g in relevant[u].items()} for u in users]
    burges = ndcg_at_k(rec[users], exponential, k, graded=True)
    np.testing.assert_allclose(burges, ranx_graded[f"ndcg_burges@{k}"], rtol=0, atol=TOL)
    if k > 1:  # the two gain definitions really differ on graded data
        assert np.abs(linear - ranx_graded[f"ndcg_burges@{k}"]).max() > 1e-3


def _ap_min_k_reference(row: np.ndarray, relevant: set[int], k: int) -> float:
    hits, total = 0, 0.0
    for rank, item in enumerate(row[:k], start=1):
        if item != PAD_ID and item in relevant:
            hits += 1
            total += hits / rank
    return total / min(k, len(relevant))


@pytest.mark.parametrize("k", KS)
def test_ranx_map_is_not_min_k_normalised(batch, ranx_binary, k: int) -> None:
    rec, relevant, users = batch
    rel_sets = [set(relevant[u]) for u in users]
    min_k = map_at_k(rec[users], rel_sets, k, normalize="min_k")
    expected = [_ap_min_k_reference(rec[u], set(relevant[u]), k) for u in users]
    np.testing.assert_allclose(min_k, expected, rtol=0, atol=TOL)
    more_relevant_than_k = np.array([len(r) > k for r in rel_sets])
    differs = np.abs(min_k - ranx_binary[f"map@{k}"]) > 1e-6
    # they differ exactly where |R| > k and the list has a hit
    np.testing.assert_array_equal(differs, more_relevant_than_k & (min_k > 0))


def test_users_without_relevant_items_are_nan(batch) -> None:
    rec, relevant, _ = batch
    empty = np.array([not r for r in relevant])
    assert empty.sum() > 0
    sets = [set(r) for r in relevant]
    for fn in (precision_at_k, recall_at_k, ndcg_at_k, map_at_k, mrr_at_k, hit_rate_at_k):
        np.testing.assert_array_equal(np.isnan(fn(rec, sets, 10)), empty)
