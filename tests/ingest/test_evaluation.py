from __future__ import annotations

import math

import pytest

from sona.ingest.evaluation import evaluate_resolution
from sona.ingest.resolution import Resolution


def test_hand_computed_rules_pairs_classes_and_lookalikes():
    # works: 1 1 1 2 2 3 ; clusters A={r1,r2,r4,r5} A2={r3} C={r6}
    ids = ["r1", "r2", "r3", "r4", "r5", "r6"]
    truth = {"r1": 1, "r2": 1, "r3": 1, "r4": 2, "r5": 2, "r6": 3}
    res = [Resolution("A", "new", 1.0), Resolution("A", "eidr", 1.0),
           Resolution("A2", "new", 1.0), Resolution("A", "fuzzy_title", 0.9),
           Resolution("A", "external_id", 0.99), Resolution("C", "new", 1.0)]
    links = [("r1", "r2", "eidr"), ("r2", "r4", "fuzzy_title"), ("r4", "r5", "external_id")]
    noise = {"r1": ("clean",), "r2": ("clean",), "r3": ("typo",), "r4": ("typo", "upper"),
             "r5": ("clean",), "r6": ("clean",)}
    rep = evaluate_resolution(ids, res, truth, links=links, noise=noise,
                              lookalikes={2: (1, "remake"), 3: (1, "sequel")})
    rows = {s.rule: s for s in rep.rules}
    # true pairs: C(3,2) + C(2,2) = 4; eidr alone connects (r1,r2): recall 1/4
    assert (rows["eidr"].links, rows["eidr"].tp, rows["eidr"].positives) == (1, 1, 4)
    assert rows["eidr"].precision == 1.0 and rows["eidr"].recall == pytest.approx(1 / 4)
    assert (rows["fuzzy_title"].tp, rows["fuzzy_title"].fp) == (0, 1)
    assert rows["external_id"].recall == pytest.approx(1 / 4)
    assert rows["embedding"].links == 0 and math.isnan(rows["embedding"].precision)
    # predicted pairs C(4,2)=6, correct: (r1,r2) and (r4,r5) -> 2
    p = rep.pairwise
    assert (p.links, p.tp, p.positives) == (6, 2, 4)
    assert p.f1 == pytest.approx(2 * (2 / 6) * (2 / 4) / (2 / 6 + 2 / 4))
    assert (rep.n_records, rep.n_entities, rep.n_works) == (6, 3, 3)
    assert rep.decided_by == {"new": 3, "eidr": 1, "fuzzy_title": 1, "external_id": 1}
    classes = {c.rule: c for c in rep.classes}
    # typo records r3 (work 1, alone) and r4 (work 2, in A): true pairs touching them:
    # (r3,r1) (r3,r2) (r4,r5) = 3; predicted touching: r4 with r1 r2 r5 = 3; correct: (r4,r5)
    assert (classes["typo"].links, classes["typo"].tp, classes["typo"].positives) == (3, 1, 3)
    assert (classes["upper"].links, classes["upper"].tp, classes["upper"].positives) == (3, 1, 1)
    looks = {x.kind: x for x in rep.lookalikes}
    # work 2 (remake twin of 1) shares entity A with r1, r2: 2 records x 2 records = 4 pairs
    assert (looks["remake"].merged, looks["remake"].false_pairs) == (1, 4)
    assert (looks["sequel"].merged, looks["all"].twins, looks["all"].merged) == (0, 2, 1)
    assert [r["rule"] for r in rep.rows()][-1] == "pairwise"


def test_misaligned_or_unlabelled_inputs_fail():
    with pytest.raises(ValueError, match="2 record ids for 1"):
        evaluate_resolution(["a", "b"], [Resolution("x", "new", 1.0)], {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate_resolution(["a"], [Resolution("x", "new", 1.0)], {})
