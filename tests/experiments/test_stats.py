"""Paired significance tests: known answers and agreement with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from sona.experiments.stats import compare, paired_bootstrap, wilcoxon_p


def test_constant_shift_has_a_degenerate_interval() -> None:
    b = np.linspace(0.0, 0.5, 40)
    diff, low, high, p = paired_bootstrap(b + 0.1, b, n_boot=500, seed=1)
    assert diff == pytest.approx(0.1)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert p == 0.0


def test_identical_models_are_not_significant() -> None:
    a = np.random.default_rng(0).random(50)
    c = compare(a, a.copy(), name_a="x", name_b="y", n_boot=200)
    assert (c.mean_diff, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)
    assert not c.significant
    assert np.isnan(c.wilcoxon_p)
    assert c.bootstrap_p == 1.0


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    rng = np.random.default_rng(7)
    b = rng.random(2000)
    a = b + rng.normal(0.02, 0.1, 2000)
    diff, low, high, _ = paired_bootstrap(a, b, n_boot=4000, seed=3)
    se = np.std(a - b, ddof=1) / np.sqrt(2000)
    assert low == pytest.approx(diff - 1.96 * se, abs=0.3 * se)
    assert high == pytest.approx(diff + 1.96 * se, abs=0.3 * se)


def test_bootstrap_is_reproducible_per_seed() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random(100), rng.random(100)
    assert paired_bootstrap(a, b, n_boot=300, seed=5) == paired_bootstrap(a, b, n_boot=300,
                                                                          seed=5)


def test_wilcoxon_matches_scipy_and_nan_pairs_are_dropped() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(60), rng.random(60)
    expected = scipy.stats.wilcoxon(a, b).pvalue
    a_nan, b_nan = np.append(a, np.nan), np.append(b, 0.3)
    assert wilcoxon_p(a_nan, b_nan) == pytest.approx(expected)
    c = compare(a_nan, b_nan, n_boot=100)
    assert c.n == 60 and c.mean_a == pytest.approx(a.mean())


def test_significant_difference_is_flagged() -> None:
    rng = np.random.default_rng(4)
    b = rng.random(300)
    c = compare(b + 0.05 + rng.normal(0, 0.01, 300), b, name_a="better", name_b="base",
                metric="ndcg", n_boot=1000)
    assert c.significant and c.ci_low > 0 and c.wilcoxon_p < 1e-10
    assert c.to_dict()["significant"] is True and c.to_dict()["a"] == "better"


@pytest.mark.parametrize(("a", "b", "kwargs", "message"), [
    ([0.1, 0.2], [0.1], {}, "differ in length"),
    ([np.nan], [0.1], {}, "no query has a defined value"),
    ([0.1], [0.2], {"n_boot": 0}, "n_boot must be >= 1"),
    ([0.1], [0.2], {"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
])
def test_bad_input(a: list[float], b: list[float], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b, **kwargs)
