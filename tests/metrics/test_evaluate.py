"""evaluate() and summarize(): the Microsoft Recommenders protocol on Interactions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Interactions
from sona.metrics import (
    METRIC_NAMES,
    catalog_coverage,
    evaluate,
    map_at_k,
    ndcg_at_k,
    novelty,
    personalization,
    precision_at_k,
    recall_at_k,
    summarize,
)
from sona.models.popularity import Popularity, PopularityConfig
from sona.testing.fixtures import power_law_frame
from sona.types import PAD_ID, Recommendations

# Microsoft Recommenders' rating_true fixture as a test log, and rating_pred's ranked lists
MS_TEST = Interactions.from_frame(pd.DataFrame({
    "user_id": [1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1],
    "item_id": [3, 1, 4, 5, 6, 7, 2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 1, 2],
    "rating": [3, 5, 5, 3, 3, 1, 5, 5, 5, 4, 4, 3, 3, 3, 2, 1, 5, 4],
}))
IDS = np.array([
    [3, 10, 12] + [PAD_ID] * 7,
    [10, 3, 5, 11, 13] + [PAD_ID] * 5,
    [4, 10, 7, 13, 1, 3, 5, 2, 11, 14],
    [1, 2, 3] + [PAD_ID] * 7,  # user 9 has no test items
])
SCORES = np.where(IDS == PAD_ID, np.nan, -np.arange(10.0))
RECS = Recommendations(IDS, SCORES)
USERS = np.array([1, 2, 3, 9])
# training log: item i (1..15) seen by users 1..(i % 3 + 1) -> popularity i % 3 + 1 of 3 users
TRAIN = Interactions.from_frame(pd.DataFrame(
    [(u, i) for i in range(1, 16) for u in range(1, i % 3 + 2)], columns=["user_id", "item_id"]))


def test_microsoft_recommenders_protocol() -> None:
    result = evaluate(RECS, USERS, MS_TEST, k=10, metrics=["precision", "recall", "ndcg", "map"])
    assert list(result) == ["precision", "recall", "ndcg", "map"]
    for values in result.values():
        assert values.shape == (4,) and np.isnan(values[3]) and not np.isnan(values[:3]).any()
    means = summarize(result)
    assert means["precision"] == pytest.approx(0.26666, abs=1e-4)
    assert means["recall"] == pytest.approx(0.37777, abs=1e-4)
    assert means["ndcg"] == pytest.approx(0.38172, abs=1e-4)
    assert means["map"] == pytest.approx(0.23613, abs=1e-4)


def test_all_metrics_equal_direct_calls() -> None:
    k = 3
    result = evaluate(RECS, USERS, MS_TEST, k=k, metrics=METRIC_NAMES, train=TRAIN)
    relevant = [{1, 2, 3}, {1, 4, 5, 6, 7}, {2, 5, 6, 8, 9, 10, 11, 12, 13, 14}, set()]
    top = IDS[:, :k]
    np.testing.assert_array_equal(result["precision"], precision_at_k(top, relevant, k))
    np.testing.assert_array_equal(result["recall"], recall_at_k(top, relevant, k))
    np.testing.assert_array_equal(result["ndcg"], ndcg_at_k(top, relevant, k))
    np.testing.assert_array_equal(result["map_min_k"],
                                  map_at_k(top, relevant, k, normalize="min_k"))
    pop = {i: float(i % 3 + 1) for i in range(1, 16)}
    np.testing.assert_allclose(result["novelty"], novelty(top, pop, 3))
    # user 1's top 3 are items 3, 10, 12 with popularity 1, 2, 1 of 3 users
    assert result["novelty"][0] == pytest.approx(np.mean([math.log2(3), math.log2(1.5),
                                                          math.log2(3)]))
    assert result["coverage"].shape == () and result["personalization"].shape == ()
    # distinct top-3 items: {1, 2, 3, 4, 5, 7, 10, 12}
    assert float(result["coverage"]) == catalog_coverage(top, 15) == pytest.approx(8 / 15)
    assert float(result["personalization"]) == personalization(top)
    assert summarize(result)["coverage"] == pytest.approx(8 / 15)


def test_string_ids() -> None:
    test = Interactions.from_frame(pd.DataFrame({"user_id": ["a", "a", "b"],
                                                 "item_id": ["x", "y", "z"]}))
    recs = Recommendations(np.array([["y", "q"], ["z", ""]], dtype=object),
                           np.array([[2.0, 1.0], [1.0, np.nan]]))
    result = evaluate(recs, ["a", "b"], test, k=2, metrics=["recall", "mrr", "hit_rate"])
    np.testing.assert_allclose(result["recall"], [0.5, 1.0])
    np.testing.assert_allclose(result["mrr"], [1.0, 1.0])


def test_popularity_model_end_to_end() -> None:
    frame = power_law_frame(n_users=60, n_items=80, n_interactions=900, seed=1)
    test_mask = np.random.default_rng(0).random(len(frame)) < 0.25
    train = Interactions.from_frame(frame[~test_mask])
    test = Interactions.from_frame(frame[test_mask])
    model = Popularity(PopularityConfig()).fit(train)
    users = train.users.ids_array
    recs = model.recommend(users, k=10)
    result = evaluate(recs, users, test, k=5, metrics=METRIC_NAMES, train=train)
    truth = test.user_items()
    relevant = [truth.get(u, set()) for u in users.tolist()]
    np.testing.assert_array_equal(result["ndcg"], ndcg_at_k(recs.ids[:, :5], relevant, 5))
    has_test = np.array([len(r) > 0 for r in relevant])
    for name in ("precision", "recall", "ndcg", "map", "map_min_k", "mrr", "hit_rate"):
        np.testing.assert_array_equal(np.isnan(result[name]), ~has_test)
    assert np.isfinite(result["novelty"]).all()
    assert 0.0 < float(result["coverage"]) <= 1.0
    # without exclusion everyone gets the same popular items: no personalization
    same = model.recommend(users, k=10, exclude_seen=False)
    shared = evaluate(same, users, test, k=5, metrics=["personalization", "coverage"],
                      train=train)
    assert float(shared["personalization"]) == 0.0
    assert float(shared["coverage"]) == 5 / train.n_items


def test_unknown_metric_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['ndgc'\]; valid: .*'ndcg'"):
        evaluate(RECS, USERS, MS_TEST, k=5, metrics=["ndgc"])
    with pytest.raises(ValueError, match="no metrics"):
        evaluate(RECS, USERS, MS_TEST, k=5, metrics=[])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["novelty"]}, r"\['novelty'\] need the training log"),
        ({"metrics": ["coverage"]}, "need the training log"),
        ({"metrics": ["recall"], "k": 11}, "fewer than k=11"),
        ({"metrics": ["recall"], "user_ids": USERS[:2]}, "one id per recs row"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"user_ids": USERS, "k": 5} | kwargs
    user_ids = args.pop("user_ids")
    with pytest.raises(ValueError, match=message):
        evaluate(RECS, user_ids, MS_TEST, **args)


def test_item_id_kind_mismatch_is_an_error() -> None:
    recs = Recommendations(IDS.astype(str), SCORES)
    with pytest.raises(ValueError, match="different kinds"):
        evaluate(recs, USERS, MS_TEST, k=5, metrics=["recall"])


def test_summarize_ignores_nan() -> None:
    summary = summarize({"a": np.array([1.0, np.nan, 0.0]), "b": np.array([np.nan]),
                         "c": np.asarray(0.25), "d": np.array([])})
    assert summary["a"] == 0.5 and summary["c"] == 0.25
    assert math.isnan(summary["b"]) and math.isnan(summary["d"])
