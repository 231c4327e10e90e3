from __future__ import annotations

import collections

import pytest

from sona.search.evaluation import (
    METHODS,
    EvalQuery,
    build_query_set,
    evaluate_methods,
    ranking_grid,
    read_query_set,
    run_queries,
    summarize,
    tune,
    write_query_set,
)
from sona.search.text_index import words


@pytest.fixture(scope="module")
def queries(ml100k, ml_docs):
    counts = ml100k.interactions.frame.groupby("item_id").size().to_dict()
    return build_query_set(ml_docs, counts, n_known=10, n_alternate=3, n_intent=10)


def test_query_set_is_seeded_and_labelled(queries, ml100k, ml_docs):
    counts = ml100k.interactions.frame.groupby("item_id").size().to_dict()
    again = build_query_set(ml_docs, counts, n_known=10, n_alternate=3, n_intent=10)
    assert [q.to_json() for q in again] == [q.to_json() for q in queries]
    kinds = collections.Counter(q.kind for q in queries)
    assert kinds["exact"] == kinds["partial"] == kinds["typo"] == 10 and kinds["intent"] == 10
    assert {q.split for q in queries} == {"dev", "test"}
    docs = ml_docs.set_index("item_id")
    for q in queries:
        if q.kind == "exact":
            (item,) = q.relevant
            assert q.query == " ".join(words(docs.loc[item, "title"]))
        if q.kind == "intent":
            assert len(q.relevant) >= 3 and set(q.relevant.values()) <= {1.0, 2.0}


def test_intent_relevance_matches_metadata(ml_docs):
    counts = {i: 100 for i in ml_docs["item_id"]}
    qs = build_query_set(ml_docs, counts, n_known=0, n_alternate=0, n_intent=40)
    plain = [q for q in qs if q.query in ("westerns", "western", "dramas", "drama")]
    for q in plain:
        genre = "western" if q.query.startswith("western") else "drama"
        expected = {i for i, g in zip(ml_docs["item_id"], ml_docs["genres"], strict=True)
                    if genre in g}
        assert set(q.relevant) == expected and set(q.relevant.values()) == {2.0}


def test_round_trip(tmp_path, queries):
    write_query_set(tmp_path / "q.jsonl", queries)
    assert read_query_set(tmp_path / "q.jsonl") == queries


def test_methods_and_summary(small_engine):
    qs = [EvalQuery("a", "star wars", "exact", "test", {1: 1.0}),
          EvalQuery("b", "galxy quest", "typo", "test", {6: 1.0}),
          EvalQuery("c", "90s sci-fi comedies", "intent", "dev", {5: 2.0, 6: 1.0})]
    per = run_queries(small_engine, qs, mode="keyword")
    assert per["mrr"].tolist() == [1.0, 1.0, pytest.approx(per["mrr"].iat[2])]
    assert per["ndcg"].between(0, 1).all()
    frame = evaluate_methods(small_engine, qs)
    assert set(frame["method"]) == set(METHODS) and len(frame) == 3 * len(METHODS)
    table = summarize(frame)
    assert table.loc["bm25", "mrr known-item"] == 1.0
    assert "ndcg@10 intent" in table.columns and "p50 ms" in table.columns
    grid = tune(small_engine, qs, grid=ranking_grid()[:2])
    assert len(grid) == 4 and grid["ndcg"].is_monotonic_decreasing


def test_ranking_grid_is_valid():
    grid = ranking_grid()
    assert len(grid) == 108
    for cfg in grid:
        cfg.validated()
