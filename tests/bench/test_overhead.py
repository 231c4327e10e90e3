import json

import numpy as np
import pytest

from sona.bench.overhead import STAGES, run_overhead
from sona.data.splits import stratified_split
from sona.models.als import ALSConfig
from sona.testing.fixtures import random_interactions


@pytest.fixture(scope="module")
def split():
    return stratified_split(random_interactions(n_users=80, n_items=120, n_interactions=2000,
                                                seed=8), 0.75, seed=42)


@pytest.fixture(scope="module")
def result(split):
    config = ALSConfig(n_factors=8, regularization=1.0, alpha=2.0, n_iter=5, n_threads=1)
    return run_overhead(split.train, split.test, config=config, k=10, repeats=2)


def test_both_pipelines_fit_the_same_model(result):
    assert result.ndcg["sona"] == pytest.approx(result.ndcg["implicit"], rel=1e-6)
    assert 0.0 < result.ndcg["sona"] <= 1.0


def test_timings_medians_and_ratios(result, split):
    for side in (result.sona, result.implicit):
        assert set(side) == {*STAGES, "total"}
        assert all(len(v) == 2 and min(v) > 0 for v in side.values())
        np.testing.assert_allclose(side["total"], np.sum([side[s] for s in STAGES], axis=0))
    med = result.medians("sona")
    assert med["fit"] == pytest.approx(np.median(result.sona["fit"]))
    ratios = result.ratios()
    assert ratios["total"] == pytest.approx(med["total"] / result.medians("implicit")["total"])
    assert result.n_users == split.train.n_users and result.n_train == len(split.train)


def test_to_dict_is_json(result):
    data = json.loads(json.dumps(result.to_dict()))
    assert data["benchmark"] == "overhead" and data["repeats"] == 2
    assert data["config"]["n_factors"] == 8
    assert set(data["ratio"]) == {*STAGES, "total"}


def test_bad_repeats_raise(split):
    with pytest.raises(ValueError, match="repeats"):
        run_overhead(split.train, split.test, repeats=0)


def test_environment_recorded(result):
    env = result.to_dict()["environment"]
    assert env["implicit"].count(".") >= 1 and env["cpu_count"] >= 1
    assert set(env["load_avg_1min"]) == {"before", "after"}
