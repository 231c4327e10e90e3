"""Statistics against references (scipy, closed forms) and by seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sona.ab import stats


def test_srm_flags_only_real_mismatches() -> None:
    fine = stats.srm_test([5030, 4970], [0.5, 0.5])
    assert not fine.flagged and fine.p_value == pytest.approx(
        sps.chisquare([5030, 4970]).pvalue)
    broken = stats.srm_test([5300, 4700], [0.5, 0.5])
    assert broken.flagged and broken.chi2 == pytest.approx(36.0)
    assert stats.srm_test([2000, 3000, 5000], [0.2, 0.3, 0.5]).chi2 == 0.0
    with pytest.raises(ValueError, match="one weight each"):
        stats.srm_test([1, 2], [1.0])


def test_two_proportion_ztest_known_answer() -> None:
    out = stats.two_proportion_ztest(200, 1000, 250, 1000)
    pooled = 0.225
    z = 0.05 / math.sqrt(pooled * (1 - pooled) * 2 / 1000)
    assert out.z == pytest.approx(z) and out.p_value == pytest.approx(2 * sps.norm.sf(z))
    half = 1.959963985 * math.sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000)
    assert (out.ci_low, out.ci_high) == pytest.approx((0.05 - half, 0.05 + half))
    assert out.relative_uplift == pytest.approx(0.25)
    assert out.relative_ci_low < 0.25 < out.relative_ci_high
    with pytest.raises(ValueError, match="users > 0"):
        stats.two_proportion_ztest(1, 0, 1, 10)


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    c, t = rng.normal(1.0, 1.0, 300), rng.normal(1.2, 2.0, 500)
    out = stats.welch_ttest(c, t)
    ref = sps.ttest_ind(t, c, equal_var=False)
    assert out.t == pytest.approx(ref.statistic) and out.p_value == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (out.ci_low, out.ci_high) == pytest.approx((ci.low, ci.high))
    const = stats.welch_ttest([1.0, 1.0], [1.0, 1.0])
    assert const.p_value == 1.0 and const.diff == 0.0


def test_welch_interval_covers_at_the_stated_rate() -> None:
    rng = np.random.default_rng(2)
    hits = sum(
        (lambda r: r.ci_low <= 0.3 <= r.ci_high)(stats.welch_ttest(
            rng.exponential(1.0, 200), rng.exponential(1.0, 200) + 0.3))
        for _ in range(400))
    assert 0.92 <= hits / 400 <= 0.98


def test_cuped_removes_covariate_variance_without_bias() -> None:
    rng = np.random.default_rng(3)
    effects, raw_se, adj_se = [], [], []
    for _ in range(200):
        x = rng.gamma(2.0, 1.0, 2000)
        y = 0.8 * x + rng.normal(0, 0.6, 2000)
        y[1000:] += 0.1
        out = stats.cuped(y[:1000], y[1000:], x[:1000], x[1000:])
        rho = np.corrcoef(x, y)[0, 1]
        assert out.variance_reduction == pytest.approx(1 - rho**2, abs=0.02)
        effects.append(out.test.diff)
        adj_se.append(out.test.se)
        raw_se.append(stats.welch_ttest(y[:1000], y[1000:]).se)
    assert np.mean(effects) == pytest.approx(0.1, abs=0.01)
    assert np.mean(adj_se) < 0.6 * np.mean(raw_se)
    flat = stats.cuped([1.0, 2.0], [2.0, 3.0], [0.0, 0.0], [0.0, 0.0])
    assert flat.theta == 0.0 and flat.variance_reduction == 1.0


@pytest.mark.parametrize(("xc", "nc", "xt", "nt"), [(30, 100, 40, 100), (5, 50, 3, 60),
                                                    (120, 1000, 150, 1000)])
def test_beta_binomial_matches_closed_form(xc: int, nc: int, xt: int, nt: int) -> None:
    out = stats.beta_binomial(xc, nc, xt, nt, draws=400_000, seed=4)
    exact = stats.prob_beat_exact(out.control_alpha, out.control_beta,
                                  int(out.treatment_alpha), out.treatment_beta)
    assert out.p_beat_control == pytest.approx(exact, abs=0.004)
    # E[max(c - t, 0)] - E[max(t - c, 0)] = E[c] - E[t]
    mean_c = out.control_alpha / (out.control_alpha + out.control_beta)
    mean_t = out.treatment_alpha / (out.treatment_alpha + out.treatment_beta)
    assert out.expected_loss_treatment - out.expected_loss_control == pytest.approx(
        mean_c - mean_t, abs=0.002)


def test_msprt_keeps_false_positives_under_alpha_with_peeking() -> None:
    # A/A tests with 20 peeks: naive z-tests at every peek reject far more than 5%;
    # the always-valid p-value does not.
    rng = np.random.default_rng(5)
    n_sims, n, looks = 300, 2000, np.linspace(100, 2000, 20).astype(int)
    naive = msprt = 0
    for _ in range(n_sims):
        c, t = rng.normal(0, 1, n), rng.normal(0, 1, n)
        seq = stats.msprt([(c[:k], t[:k]) for k in looks], tau=0.1)
        assert all(a >= b for a, b in zip(seq.p_values, seq.p_values[1:], strict=False))
        msprt += seq.reject
        naive += any(stats.welch_ttest(c[:k], t[:k]).p_value < 0.05 for k in looks)
    assert naive / n_sims > 0.12
    assert msprt / n_sims <= 0.05


def test_msprt_detects_a_real_effect() -> None:
    rng = np.random.default_rng(6)
    c, t = rng.normal(0, 1, 3000), rng.normal(0.15, 1, 3000)
    seq = stats.msprt([(c[:k], t[:k]) for k in range(200, 3001, 200)], tau=0.15)
    assert seq.reject and seq.always_valid_p < 0.01
    with pytest.raises(ValueError, match="tau"):
        stats.msprt([(c, t)], tau=0.0)


def test_power_and_sample_size_agree() -> None:
    n = stats.sample_size_two_sample(2.0, 0.1)
    assert stats.power_two_sample(2.0, 0.1, n) == pytest.approx(0.8, abs=0.002)
    assert stats.power_two_sample(2.0, 0.1, n / 4) < 0.3
    assert n == math.ceil(2 * ((1.959964 + 0.841621) * 2.0 / 0.1) ** 2)
