"""Ranking metrics: known answers (Microsoft Recommenders, Wikipedia), properties, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sona.metrics import (
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from sona.testing.strategies import perfect_ranking_cases, ranking_cases
from sona.types import PAD_ID, Recommendations

BINARY = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "map": lambda r, rel, k: map_at_k(r, rel, k, normalize="relevant"),
    "map_min_k": lambda r, rel, k: map_at_k(r, rel, k, normalize="min_k"),
}

# Microsoft Recommenders' evaluation fixture (tests/unit/recommenders/evaluation/conftest.py):
# rating_true's items per user, and rating_pred's items sorted by prediction, descending.
MS_RELEVANT = [{3, 1, 2}, {1, 4, 5, 6, 7}, {2, 5, 6, 8, 9, 10, 11, 12, 13, 14}]
MS_RECOMMENDED = np.array([
    [3, 10, 12] + [PAD_ID] * 7,
    [10, 3, 5, 11, 13] + [PAD_ID] * 5,
    [4, 10, 7, 13, 1, 3, 5, 2, 11, 14],
])


def _log2(r: int) -> float:
    return math.log2(r + 1)


def reference(row: list[int], relevant: dict | set, k: int) -> dict[str, float]:
    """Slow, obvious per-query definitions (one query at a time, Python sets)."""
    gains = dict(relevant) if isinstance(relevant, dict) else dict.fromkeys(relevant, 1.0)
    gains = {i: g for i, g in gains.items() if g > 0}
    if not gains:
        return dict.fromkeys([*BINARY, "ndcg_graded"], math.nan)
    seen: set[int] = set()
    hit_ranks, dcg, dcg_graded = [], 0.0, 0.0
    for rank, item in enumerate(row[:k], start=1):
        if item == PAD_ID or item in seen:
            continue
        seen.add(item)
        if item in gains:
            hit_ranks.append(rank)
            dcg += 1.0 / _log2(rank)
            dcg_graded += gains[item] / _log2(rank)
    n_rel, hits = len(gains), len(hit_ranks)
    idcg = sum(1.0 / _log2(r) for r in range(1, min(n_rel, k) + 1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg_graded = sum(g / _log2(r) for r, g in enumerate(ideal, start=1))
    ap = sum((i + 1) / rank for i, rank in enumerate(hit_ranks))
    return {
        "precision": hits / k,
        "recall": hits / n_rel,
        "hit_rate": float(hits > 0),
        "mrr": 1.0 / hit_ranks[0] if hit_ranks else 0.0,
        "ndcg": dcg / idcg,
        "map": ap / n_rel,
        "map_min_k": ap / min(k, n_rel),
        "ndcg_graded": dcg_graded / idcg_graded,
    }


def test_microsoft_recommenders_known_values() -> None:
    # Expected means from Microsoft Recommenders test_python_evaluation.py (k=10, TOL 1e-4).
    k = 10
    assert precision_at_k(MS_RECOMMENDED, MS_RELEVANT, k).mean() == pytest.approx(0.26666, abs=1e-4)
    assert recall_at_k(MS_RECOMMENDED, MS_RELEVANT, k).mean() == pytest.approx(0.37777, abs=1e-4)
    assert ndcg_at_k(MS_RECOMMENDED, MS_RELEVANT, k).mean() == pytest.approx(0.38172, abs=1e-4)
    assert map_at_k(MS_RECOMMENDED, MS_RELEVANT, k).mean() == pytest.approx(0.23613, abs=1e-4)
    assert map_at_k(MS_RECOMMENDED, MS_RELEVANT, k, normalize="min_k").mean() == pytest.approx(
        0.23613, abs=1e-4)


def test_microsoft_recommenders_per_user_by_hand() -> None:
    k = 10
    np.testing.assert_allclose(precision_at_k(MS_RECOMMENDED, MS_RELEVANT, k), [0.1, 0.1, 0.6])
    np.testing.assert_allclose(recall_at_k(MS_RECOMMENDED, MS_RELEVANT, k), [1 / 3, 1 / 5, 0.6])
    np.testing.assert_allclose(mrr_at_k(MS_RECOMMENDED, MS_RELEVANT, k), [1.0, 1 / 3, 0.5])
    np.testing.assert_allclose(hit_rate_at_k(MS_RECOMMENDED, MS_RELEVANT, k), [1.0, 1.0, 1.0])
    # user 3 hits at ranks 2, 4, 7, 8, 9, 10
    ap3 = (1 / 2 + 2 / 4 + 3 / 7 + 4 / 8 + 5 / 9 + 6 / 10) / 10
    np.testing.assert_allclose(map_at_k(MS_RECOMMENDED, MS_RELEVANT, k), [1 / 3, (1 / 3) / 5, ap3])
    d = [1 / math.log2(r + 1) for r in range(1, 11)]
    ndcg = [d[0] / sum(d[:3]), d[2] / sum(d[:5]),
            (d[1] + d[3] + d[6] + d[7] + d[8] + d[9]) / sum(d)]
    np.testing.assert_allclose(ndcg_at_k(MS_RECOMMENDED, MS_RELEVANT, k), ndcg)
    # the rating_true-as-prediction case: precision@10 = (3 + 5 + 10) / 30 = 0.6
    perfect = np.array([sorted(r) + [PAD_ID] * (10 - len(r)) for r in MS_RELEVANT])
    assert precision_at_k(perfect, MS_RELEVANT, k).mean() == pytest.approx(0.6)
    assert map_at_k(perfect, MS_RELEVANT, k).mean() == 1.0


def test_min_k_normalisation_differs_when_more_relevant_than_k() -> None:
    # 4 relevant, k=2, both slots hit: AP/|R| = 2/4, AP/min(k,|R|) = 2/2
    rec = np.array([[1, 2, 3]])
    rel = [{1, 2, 8, 9}]
    assert map_at_k(rec, rel, 2)[0] == pytest.approx(0.5)
    assert map_at_k(rec, rel, 2, normalize="min_k")[0] == pytest.approx(1.0)


def test_graded_ndcg_wikipedia_example() -> None:
    # en.wikipedia.org/wiki/Discounted_cumulative_gain; also Microsoft Recommenders'
    # score_type="raw" test: nDCG@6 = 0.785 with linear gains.
    gains = dict(enumerate([3, 2, 3, 0, 1, 2, 3, 2]))
    value = ndcg_at_k(np.array([[0, 1, 2, 3, 4, 5]]), [gains], 6, graded=True)[0]
    assert value == pytest.approx(0.785, abs=5e-4)


def test_no_relevant_gives_nan_and_empty_list_gives_zero() -> None:
    rec = np.array([[1, 2], [PAD_ID, PAD_ID], [3, 4]])
    rel = [set(), {1}, {0: 0.0}]  # gain-0 judgements are not relevant
    for name, fn in BINARY.items():
        values = fn(rec, rel, 2)
        assert np.isnan(values[0]) and np.isnan(values[2]), name
        assert values[1] == 0.0, name
    assert np.isnan(ndcg_at_k(rec, rel, 2, graded=True)[[0, 2]]).all()


def test_duplicates_count_once_and_keep_their_slot() -> None:
    rel = [{1, 2}]
    dup = np.array([[1, 1, 2]])
    padded = np.array([[1, PAD_ID, 2]])
    for name, fn in BINARY.items():
        np.testing.assert_array_equal(fn(dup, rel, 3), fn(padded, rel, 3), err_msg=name)
    assert precision_at_k(dup, rel, 3)[0] == pytest.approx(2 / 3)


def test_recommendations_input_uses_nan_scores_as_padding() -> None:
    ids = np.array([[5, 6, 7]])
    scores = np.array([[3.0, 2.0, np.nan]])
    recs = Recommendations(ids, scores)
    assert precision_at_k(recs, [{5, 7}], 3)[0] == pytest.approx(1 / 3)
    assert recall_at_k(recs, [{5, 7}], 3)[0] == pytest.approx(1 / 2)


def test_string_ids_and_mixed_kinds() -> None:
    rec = np.array([["a", "b", ""], ["c", "", ""]], dtype=object)
    rel = [{"b"}, {"c", "d"}]
    np.testing.assert_allclose(mrr_at_k(rec, rel, 3), [0.5, 1.0])
    np.testing.assert_allclose(recall_at_k(rec.astype(str), rel, 3), [1.0, 0.5])
    # an int id never equals its string spelling
    assert precision_at_k(np.array([[1, 2]]), [{"1", "2"}], 2)[0] == 0.0
    # relevant given as lists/arrays with repeats: counted once
    np.testing.assert_allclose(recall_at_k(np.array([[1, 2]]), [np.array([1, 1, 3])], 2), [0.5])


def test_empty_batch() -> None:
    assert precision_at_k(np.zeros((0, 3), dtype=np.int64), [], 3).shape == (0,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.array([[1, 2]]), [{1}], 0), "k must be a positive integer"),
        ((np.array([[1, 2]]), [{1}], 3), "fewer than k=3"),
        ((np.array([1, 2]), [{1}], 1), "must be 2-D"),
        ((np.array([[1, 2]]), [{1}, {2}], 1), "2 entries for 1 queries"),
        ((np.array([[1, 2]]), [{1: -1.0}], 1), "gains must be finite and >= 0"),
    ],
)
def test_bad_input_raises_value_error(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(*args)


def test_bad_types_and_normalize() -> None:
    with pytest.raises(TypeError, match="relevant"):
        recall_at_k(np.array([["ab"]]), ["ab"], 1)
    with pytest.raises(ValueError, match="normalize"):
        map_at_k(np.array([[1]]), [{1}], 1, normalize="k")  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_matches_reference_definitions(case) -> None:
    expected = [reference(row.tolist(), rel, case.k)
                for row, rel in zip(case.recommended, case.relevant, strict=True)]
    for name, fn in BINARY.items():
        np.testing.assert_allclose(fn(case.recommended, case.relevant, case.k),
                                   [e[name] for e in expected], rtol=1e-12, atol=1e-12,
                                   err_msg=name)


@settings(max_examples=100, deadline=None)
@given(ranking_cases(graded=True))
def test_graded_ndcg_matches_reference(case) -> None:
    expected = [reference(row.tolist(), rel, case.k)["ndcg_graded"]
                for row, rel in zip(case.recommended, case.relevant, strict=True)]
    np.testing.assert_allclose(ndcg_at_k(case.recommended, case.relevant, case.k, graded=True),
                               expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_range_nan_pattern_and_precision_counts_hits(case) -> None:
    no_relevant = np.array([len(r) == 0 for r in case.relevant])
    for name, fn in BINARY.items():
        values = fn(case.recommended, case.relevant, case.k)
        assert values.shape == (len(case.relevant),) and values.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(values), no_relevant, err_msg=name)
        defined = values[~no_relevant]
        assert ((defined >= 0) & (defined <= 1 + 1e-12)).all(), name
    hits = [len({x for x in row[: case.k] if x != PAD_ID} & rel)
            for row, rel in zip(case.recommended.tolist(), case.relevant, strict=True)]
    precision = precision_at_k(case.recommended, case.relevant, case.k)
    np.testing.assert_allclose((precision * case.k)[~no_relevant], np.array(hits)[~no_relevant])


@settings(max_examples=100, deadline=None)
@given(ranking_cases(min_relevant=1))
def test_orderings_between_metrics(case) -> None:
    rec, rel, k = case
    mrr, hit = mrr_at_k(rec, rel, k), hit_rate_at_k(rec, rel, k)
    assert (mrr <= hit).all() and ((mrr > 0) == (hit > 0)).all()
    assert (map_at_k(rec, rel, k) <= map_at_k(rec, rel, k, normalize="min_k") + 1e-12).all()
    graded_ones = [dict.fromkeys(r, 1.0) for r in rel]
    np.testing.assert_allclose(ndcg_at_k(rec, graded_ones, k, graded=True), ndcg_at_k(rec, rel, k))
    if k < rec.shape[1]:  # recall and hit rate never drop as k grows
        assert (recall_at_k(rec, rel, k + 1) >= recall_at_k(rec, rel, k)).all()
        assert (hit_rate_at_k(rec, rel, k + 1) >= hit).all()


@settings(max_examples=100, deadline=None)
@given(perfect_ranking_cases(), st.booleans())
def test_perfect_ranking(case, as_recommendations: bool) -> None:
    rec, rel, k = case
    if as_recommendations:
        scores = np.where(rec == PAD_ID, np.nan, -np.arange(rec.shape[1], dtype=float))
        rec = Recommendations(rec, scores)
    n_rel = np.array([len(r) for r in rel])
    np.testing.assert_allclose(ndcg_at_k(rec, rel, k), 1.0)
    np.testing.assert_allclose(map_at_k(rec, rel, k, normalize="min_k"), 1.0)
    np.testing.assert_allclose(map_at_k(rec, rel, k), np.minimum(k, n_rel) / n_rel)
    assert (map_at_k(rec, rel, k)[n_rel <= k] == 1.0).all()
    np.testing.assert_allclose(mrr_at_k(rec, rel, k), 1.0)
    np.testing.assert_allclose(hit_rate_at_k(rec, rel, k), 1.0)
    np.testing.assert_allclose(precision_at_k(rec, rel, k), np.minimum(k, n_rel) / k)
    np.testing.assert_allclose(recall_at_k(rec, rel, k), np.minimum(k, n_rel) / n_rel)


@settings(max_examples=60, deadline=None)
@given(perfect_ranking_cases(graded=True))
def test_perfect_graded_ranking_gives_ndcg_one(case) -> None:
    np.testing.assert_allclose(ndcg_at_k(case.recommended, case.relevant, case.k, graded=True),
                               1.0)


@settings(max_examples=60, deadline=None)
@given(ranking_cases(padding=False, duplicates=False, min_relevant=1))
def test_array_and_recommendations_agree(case) -> None:
    rec, rel, k = case
    scores = -np.arange(rec.size, dtype=float).reshape(rec.shape)
    wrapped = Recommendations(rec, scores)
    for name, fn in BINARY.items():
        np.testing.assert_array_equal(fn(wrapped, rel, k), fn(rec, rel, k), err_msg=name)
