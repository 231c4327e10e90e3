"""The report on data written straight into the store: detection, SRM, CUPED, A/A."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from sona.ab import tables as t
from sona.ab.analysis import analyze
from sona.ab.assignment import buckets, choose_variants
from sona.ab.records import Experiment, VariantSpec
from sona.ab.repository import ExperimentRepository


def _populate(repo: ExperimentRepository, name: str, n: int, uplift: float, *, seed: int,
              drop_treatment: float = 0.0) -> Experiment:
    """n users: pre-period clicks ~ Poisson(theta), experiment clicks ~ Poisson(theta (1+u))."""
    rng = np.random.default_rng(seed)
    exp = repo.create_experiment(name, [VariantSpec("control", 0.5),
                                        VariantSpec("treatment", 0.5)], salt=f"salt-{name}")
    exp = repo.set_status(exp.id, "running")
    start = float(exp.started_at or 0.0)
    users = [f"{name}-u{i}" for i in range(n)]
    u = buckets(exp.salt, users)
    arm = choose_variants(u, exp.weights, 1.0)
    theta = rng.gamma(2.0, 0.6, n)
    keep = ~((arm == 1) & (rng.random(n) < drop_treatment))
    pre = rng.poisson(theta * 4.0)
    during = rng.poisson(theta * np.where(arm == 1, 1.0 + uplift, 1.0))
    assignments, exposures, outcomes = [], [], []
    for i, user in enumerate(users):
        vid = exp.variants[arm[i]].id
        assignments.append({"experiment_id": exp.id, "user_id": user, "variant_id": vid,
                            "bucket": float(u[i]), "assigned_at": start + i})
        for k in range(int(pre[i])):
            outcomes.append({"event_id": f"{user}-pre{k}", "experiment_id": None,
                             "variant_id": None, "user_id": user, "metric": "click",
                             "value": 1.0, "recorded_at": start - 1000.0 + k,
                             "received_at": start})
        if not keep[i]:
            continue  # lost before the exposure was logged (a broken split)
        exposures.append({"id": str(uuid.uuid4()), "experiment_id": exp.id, "variant_id": vid,
                          "user_id": user, "endpoint": "recommendations", "n_items": 10,
                          "created_at": start + i})
        for k in range(int(during[i])):
            outcomes.append({"event_id": f"{user}-d{k}", "experiment_id": exp.id,
                             "variant_id": vid, "user_id": user, "metric": "click",
                             "value": 1.0, "recorded_at": start + i + 0.5 + k,
                             "received_at": start + i})
    with repo.engine.begin() as conn:
        conn.execute(t.assignments.insert(), assignments)
        conn.execute(t.exposures.insert(), exposures)
        conn.execute(t.outcomes.insert(), outcomes)
    return repo.get(exp.id)


def test_report_detects_an_uplift_and_cuped_shrinks_variance(
        sqlite_repo: ExperimentRepository) -> None:
    _populate(sqlite_repo, "lift", 4000, 0.2, seed=1)
    report = analyze(sqlite_repo, "lift")
    assert [v.name for v in report.variants] == ["control", "treatment"]
    assert sum(v.users for v in report.variants) == 4000 and not report.srm.flagged
    cmp_ = report.comparison("treatment")
    assert cmp_.welch is not None and cmp_.cuped is not None and cmp_.sequential is not None
    assert cmp_.welch.relative_ci_low < 0.2 < cmp_.welch.relative_ci_high
    assert cmp_.cuped.variance_reduction < 0.8
    assert cmp_.cuped.test.se < cmp_.welch.se
    assert cmp_.cuped.test.p_value < 0.001 and cmp_.significant
    # conversion (>= 1 click) moves less than clicks per user, but in the same direction
    assert cmp_.bayes.p_beat_control > 0.6
    assert cmp_.bayes.expected_loss_treatment < cmp_.bayes.expected_loss_control
    assert cmp_.sequential.reject and len(cmp_.sequential.looks) == 20
    assert cmp_.sequential.looks[0] == 200 and cmp_.sequential.looks[-1] == 4000
    body = json.loads(json.dumps(report.to_dict()))
    assert body["comparisons"][0]["significant"] is True


def test_broken_split_trips_srm(sqlite_repo: ExperimentRepository) -> None:
    _populate(sqlite_repo, "broken", 3000, 0.0, seed=2, drop_treatment=0.2)
    report = analyze(sqlite_repo, "broken")
    assert report.srm.flagged and report.srm.p_value < 1e-6
    assert report.variant("treatment").users < report.variant("control").users


def test_aa_test_finds_nothing(sqlite_repo: ExperimentRepository) -> None:
    _populate(sqlite_repo, "aa", 2000, 0.0, seed=3)
    report = analyze(sqlite_repo, "aa")
    cmp_ = report.comparison("treatment")
    assert not report.srm.flagged and not cmp_.significant
    assert cmp_.sequential is not None and not cmp_.sequential.reject


def test_explicit_covariate_and_unknown_metric(sqlite_repo: ExperimentRepository) -> None:
    exp = _populate(sqlite_repo, "cov", 400, 0.1, seed=4)
    frame = sqlite_repo.user_frame(exp, "click")
    report = analyze(sqlite_repo, "cov", covariate=dict(zip(frame["user_id"],
                                                            frame["value"], strict=True)))
    cmp_ = report.comparison("treatment")
    assert cmp_.cuped is not None and cmp_.cuped.correlation == pytest.approx(1.0)
    empty = analyze(sqlite_repo, "cov", metric="watch_time")
    assert empty.variant("control").converted == 0 and empty.metric == "watch_time"
