from __future__ import annotations

import math

import pytest

from sona.ingest.evaluation import evaluate_resolution
from sona.ingest.resolution import Resolution


def test_hand_computed_decisions_pairs_and_rules():
    # works: a a a b b c ; the 4th record (b) wrongly joins a's entity; the 6th... see below
    ids = ["r1", "r2", "r3", "r4", "r5", "r6"]
    truth = {"r1": 1, "r2": 1, "r3": 1, "r4": 2, "r5": 2, "r6": 3}
    res = [
        Resolution("A", "new", 1.0),
        Resolution("A", "eidr", 1.0),          # TP
        Resolution("A2", "new", 1.0),          # positive missed -> FN
        Resolution("A", "fuzzy_title", 0.9),   # FP: work 2 is not work 1
        Resolution("A", "external_id", 0.99),  # positive (work 2 seen) but wrong entity: FP
        Resolution("C", "new", 1.0),           # correct new entity
    ]
    rep = evaluate_resolution(ids, res, truth)
    rows = {s.rule: s for s in rep.rules}
    # positives: r2, r3, r5 -> decided by eidr, new, external_id
    assert (rows["eidr"].links, rows["eidr"].tp, rows["eidr"].positives) == (1, 1, 3)
    assert rows["eidr"].precision == 1.0 and rows["eidr"].recall == pytest.approx(1 / 3)
    ext = rows["external_id"]
    assert (ext.links, ext.tp, ext.positives) == (1, 0, 2)
    assert (rows["fuzzy_title"].fp, rows["fuzzy_title"].positives) == (1, 1)
    assert rows["embedding"].links == 0 and math.isnan(rows["embedding"].precision)
    o = rep.overall
    assert (o.links, o.tp, o.fp, o.positives) == (3, 1, 2, 3)
    assert o.precision == pytest.approx(1 / 3) and o.recall == pytest.approx(1 / 3)
    assert o.f1 == pytest.approx(1 / 3)
    # clusters: A={r1,r2,r4,r5} A2={r3} C={r6}; true pairs: C(3,2)+C(2,2)=4
    # predicted pairs C(4,2)=6, correct: (r1,r2) and (r4,r5) -> 2
    p = rep.pairwise
    assert (p.links, p.tp, p.positives) == (6, 2, 4)
    assert p.f1 == pytest.approx(2 * (2 / 6) * (2 / 4) / (2 / 6 + 2 / 4))
    assert (rep.n_records, rep.n_entities, rep.n_works) == (6, 3, 3)
    assert rep.decided_by == {"new": 3, "eidr": 1, "fuzzy_title": 1, "external_id": 1}
    assert [r["rule"] for r in rep.rows()][-2:] == ["overall", "pairwise"]


def test_misaligned_or_unlabelled_inputs_fail():
    with pytest.raises(ValueError, match="2 record ids for 1"):
        evaluate_resolution(["a", "b"], [Resolution("x", "new", 1.0)], {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate_resolution(["a"], [Resolution("x", "new", 1.0)], {})
