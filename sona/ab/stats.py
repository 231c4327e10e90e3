"""Statistics of an online experiment, as pure functions on per-user arrays.

Every test compares one treatment arm with the control on the user level (the unit of
randomisation), with two-sided tests and ``1 - alpha`` intervals:

- sample-ratio mismatch: Pearson chi-square of users per arm against the configured
  weights; flagged at ``p < 0.001`` (Fabijan et al., KDD 2019; GrowthBook's threshold);
- two-proportion z-test (pooled SE for the test, unpooled for the interval) on the share
  of users who converted;
- Welch's t-test (unequal variances, Welch-Satterthwaite df) on the per-user metric mean;
- CUPED (Deng, Xu, Kohavi & Walker, WSDM 2013): ``y - theta (x - mean x)`` with
  ``theta = cov(y, x) / var(x)`` from the pre-period covariate ``x``; variance shrinks by
  ``1 - rho^2``;
- Bayesian beta-binomial: P(treatment rate > control rate) and the expected loss of
  shipping either arm, from Beta(1 + conversions, 1 + non-conversions) posteriors;
- mixture SPRT (Johari, Koomen, Pekelis & Walsh, "Always valid inference", OR 2022):
  ``Lambda_n = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2)))`` with ``d`` the
  difference of means and ``V`` its variance; the always-valid p-value ``min_k 1/Lambda``
  may be checked after every look without inflating the false-positive rate.

Relative uplifts get delta-method intervals: ``var(m_t / m_c) ~ (m_t/m_c)^2 (se_t^2/m_t^2 +
se_c^2/m_c^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

Floats = NDArray[np.float64]


def _arr(values: ArrayLike, name: str) -> Floats:
    out = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite")
    return out


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _relative(mt: float, mc: float, se_t: float, se_c: float, z: float
              ) -> tuple[float, float, float]:
    if mc == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = mt / mc
    var = (se_c / mc) ** 2 * ratio ** 2 + (se_t / mc) ** 2
    half = z * math.sqrt(var)
    return ratio - 1.0, ratio - 1.0 - half, ratio - 1.0 + half


class _Result:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class SRMResult(_Result):
    """Sample-ratio mismatch check."""

    observed: list[int]
    expected: list[float]
    chi2: float
    p_value: float
    threshold: float
    flagged: bool


def srm_test(observed: Sequence[int], weights: Sequence[float], *,
             threshold: float = 0.001) -> SRMResult:
    """Chi-square goodness of fit of users per arm against the arm weights.

    Raises:
        ValueError: lengths differ, fewer than 2 arms, or non-positive weights.
    """
    obs = np.asarray(observed, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if obs.shape != w.shape or len(w) < 2:
        raise ValueError(f"need >= 2 arms with one weight each, got {len(obs)} counts and "
                         f"{len(w)} weights")
    if np.any(w <= 0):
        raise ValueError(f"SRM weights must be > 0, got {list(w)}")
    total = obs.sum()
    expected = total * w / w.sum()
    if total == 0:
        return SRMResult([0] * len(obs), list(expected), 0.0, 1.0, threshold, False)
    chi2, p = sps.chisquare(obs, expected)
    return SRMResult([int(o) for o in obs], [float(e) for e in expected], float(chi2),
                     float(p), threshold, bool(p < threshold))


@dataclass(frozen=True, slots=True)
class ProportionTest(_Result):
    """Two-proportion z-test of treatment vs control conversion."""

    control_rate: float
    treatment_rate: float
    diff: float
    ci_low: float
    ci_high: float
    relative_uplift: float
    relative_ci_low: float
    relative_ci_high: float
    z: float
    p_value: float


def two_proportion_ztest(x_c: int, n_c: int, x_t: int, n_t: int, *,
                         alpha: float = 0.05) -> ProportionTest:
    """z-test of ``x_t/n_t - x_c/n_c`` (pooled SE) with an unpooled Wald interval.

    Raises:
        ValueError: an empty arm or counts outside ``[0, n]``.
    """
    _check_alpha(alpha)
    for x, n in ((x_c, n_c), (x_t, n_t)):
        if n <= 0 or not 0 <= x <= n:
            raise ValueError(f"need 0 <= conversions <= users and users > 0, got {x}/{n}")
    pc, pt = x_c / n_c, x_t / n_t
    pooled = (x_c + x_t) / (n_c + n_t)
    se_pool = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    z = (pt - pc) / se_pool if se_pool > 0 else 0.0
    p = float(2 * sps.norm.sf(abs(z)))
    se_c, se_t = math.sqrt(pc * (1 - pc) / n_c), math.sqrt(pt * (1 - pt) / n_t)
    q = float(sps.norm.ppf(1 - alpha / 2))
    half = q * math.hypot(se_c, se_t)
    rel, rlo, rhi = _relative(pt, pc, se_t, se_c, q)
    return ProportionTest(pc, pt, pt - pc, pt - pc - half, pt - pc + half, rel, rlo, rhi,
                          float(z), p)


@dataclass(frozen=True, slots=True)
class MeanTest(_Result):
    """Welch's t-test of treatment vs control means."""

    control_mean: float
    treatment_mean: float
    diff: float
    ci_low: float
    ci_high: float
    relative_uplift: float
    relative_ci_low: float
    relative_ci_high: float
    t: float
    df: float
    p_value: float
    se: float


def welch_ttest(y_c: ArrayLike, y_t: ArrayLike, *, alpha: float = 0.05) -> MeanTest:
    """Welch's unequal-variance t-test with a Welch-Satterthwaite interval.

    Raises:
        ValueError: fewer than 2 users in an arm, or non-finite values.
    """
    _check_alpha(alpha)
    c, t = _arr(y_c, "control values"), _arr(y_t, "treatment values")
    if len(c) < 2 or len(t) < 2:
        raise ValueError(f"Welch's test needs >= 2 users per arm, got {len(c)} and {len(t)}")
    vc, vt = c.var(ddof=1) / len(c), t.var(ddof=1) / len(t)
    se = math.sqrt(vc + vt)
    diff = float(t.mean() - c.mean())
    if se == 0:  # both arms constant: the difference is exact
        exact = _relative(float(t.mean()), float(c.mean()), 0.0, 0.0, 0.0)
        tstat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return MeanTest(float(c.mean()), float(t.mean()), diff, diff, diff, *exact, tstat,
                        float(len(c) + len(t) - 2), 1.0 if diff == 0 else 0.0, 0.0)
    df = (vc + vt) ** 2 / (vc ** 2 / (len(c) - 1) + vt ** 2 / (len(t) - 1))
    tstat = diff / se
    p = float(2 * sps.t.sf(abs(tstat), df))
    q = float(sps.t.ppf(1 - alpha / 2, df))
    rel, rlo, rhi = _relative(float(t.mean()), float(c.mean()), math.sqrt(vt), math.sqrt(vc), q)
    return MeanTest(float(c.mean()), float(t.mean()), diff, diff - q * se, diff + q * se, rel,
                    rlo, rhi, float(tstat), float(df), p, se)


@dataclass(frozen=True, slots=True)
class CupedResult(_Result):
    """CUPED-adjusted Welch test and how much variance the covariate removed."""

    theta: float
    correlation: float
    variance_reduction: float  # var(adjusted) / var(raw): 1 - rho^2, lower is better
    test: MeanTest


def cuped(y_c: ArrayLike, y_t: ArrayLike, x_c: ArrayLike, x_t: ArrayLike, *,
          alpha: float = 0.05) -> CupedResult:
    """Welch's test on ``y - theta (x - mean(x))``, ``theta`` pooled over both arms.

    The covariate must not depend on the treatment (a pre-period value does not), so the
    adjusted difference stays unbiased while its variance drops by ``1 - rho^2``.

    Raises:
        ValueError: covariate and metric lengths differ.
    """
    c, t = _arr(y_c, "control values"), _arr(y_t, "treatment values")
    xc, xt = _arr(x_c, "control covariate"), _arr(x_t, "treatment covariate")
    if len(xc) != len(c) or len(xt) != len(t):
        raise ValueError("covariate and metric arrays differ in length")
    y, x = np.concatenate([c, t]), np.concatenate([xc, xt])
    var_x = x.var(ddof=1)
    cov = float(np.cov(y, x, ddof=1)[0, 1]) if len(y) > 1 else 0.0
    theta = cov / var_x if var_x > 0 else 0.0
    mx = x.mean()
    adj_c, adj_t = c - theta * (xc - mx), t - theta * (xt - mx)
    var_y = y.var(ddof=1)
    rho = cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else 0.0
    adj = np.concatenate([adj_c, adj_t])
    reduction = float(adj.var(ddof=1) / var_y) if var_y > 0 else 1.0
    return CupedResult(float(theta), float(rho), reduction,
                       welch_ttest(adj_c, adj_t, alpha=alpha))


@dataclass(frozen=True, slots=True)
class BayesResult(_Result):
    """Beta-binomial comparison of conversion rates."""

    control_alpha: float
    control_beta: float
    treatment_alpha: float
    treatment_beta: float
    p_beat_control: float
    expected_loss_treatment: float  # E[max(p_c - p_t, 0)]: cost of shipping the treatment
    expected_loss_control: float  # E[max(p_t - p_c, 0)]: cost of keeping the control
    draws: int


def beta_binomial(x_c: int, n_c: int, x_t: int, n_t: int, *,
                  prior: tuple[float, float] = (1.0, 1.0), draws: int = 200_000,
                  seed: int = 0) -> BayesResult:
    """Posterior P(treatment beats control) and expected losses by Monte Carlo.

    Raises:
        ValueError: counts outside ``[0, n]`` or a non-positive prior.
    """
    if min(prior) <= 0:
        raise ValueError(f"prior parameters must be > 0, got {prior}")
    for x, n in ((x_c, n_c), (x_t, n_t)):
        if n < 0 or not 0 <= x <= n:
            raise ValueError(f"need 0 <= conversions <= users, got {x}/{n}")
    a_c, b_c = prior[0] + x_c, prior[1] + n_c - x_c
    a_t, b_t = prior[0] + x_t, prior[1] + n_t - x_t
    rng = np.random.default_rng(seed)
    pc, pt = rng.beta(a_c, b_c, draws), rng.beta(a_t, b_t, draws)
    return BayesResult(a_c, b_c, a_t, b_t, float(np.mean(pt > pc)),
                       float(np.mean(np.maximum(pc - pt, 0.0))),
                       float(np.mean(np.maximum(pt - pc, 0.0))), draws)


def prob_beat_exact(a_c: float, b_c: float, a_t: int, b_t: float) -> float:
    """Closed form of P(p_t > p_c) for Beta posteriors with integer ``a_t`` (Evan Miller,
    "Formulas for Bayesian A/B testing", 2015): ``sum_i B(a_c+i, b_c+b_t) /
    ((b_t+i) B(1+i, b_t) B(a_c, b_c))`` for ``i < a_t``. Used to check the sampler."""
    from scipy.special import betaln

    i = np.arange(int(a_t), dtype=np.float64)
    logs = (betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - betaln(1 + i, b_t)
            - betaln(a_c, b_c))
    return float(np.exp(logs).sum())


def msprt_lambda(diff: float, variance: float, tau: float) -> float:
    """Normal-mixture likelihood ratio of ``diff`` with sampling variance ``variance``."""
    if variance <= 0:
        return 1.0 if diff == 0 else math.inf
    t2 = tau * tau
    log_l = 0.5 * math.log(variance / (variance + t2)) + \
        t2 * diff * diff / (2 * variance * (variance + t2))
    return math.exp(min(log_l, 700.0))


@dataclass(frozen=True, slots=True)
class SequentialResult(_Result):
    """mSPRT over a sequence of looks."""

    tau: float
    alpha: float
    looks: list[int]  # users (both arms) seen at each look
    p_values: list[float]  # always-valid p-value after each look (non-increasing)
    always_valid_p: float
    reject: bool


def msprt(looks: Sequence[tuple[ArrayLike, ArrayLike]], *, tau: float,
          alpha: float = 0.05) -> SequentialResult:
    """Always-valid p-values of the difference in means over ``looks``.

    Args:
        looks: per look, the per-user values ``(control, treatment)`` known by then.
        tau: mixture standard deviation, in metric units: effects near ``tau`` are
            detected fastest. Fix it before the data (e.g. from the pre-period).
        alpha: the level; ``reject`` once the always-valid p-value is below it.

    Raises:
        ValueError: ``tau <= 0``.
    """
    _check_alpha(alpha)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    p, sizes, ps = 1.0, [], []
    for y_c, y_t in looks:
        c, t = _arr(y_c, "control values"), _arr(y_t, "treatment values")
        sizes.append(len(c) + len(t))
        if len(c) >= 2 and len(t) >= 2:
            var = c.var(ddof=1) / len(c) + t.var(ddof=1) / len(t)
            p = min(p, 1.0 / msprt_lambda(float(t.mean() - c.mean()), var, tau))
        ps.append(p)
    return SequentialResult(tau, alpha, sizes, ps, p, p < alpha)


def power_two_sample(sd: float, delta: float, n_per_arm: float, *,
                     alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample z-test to detect ``delta`` with ``n_per_arm``."""
    _check_alpha(alpha)
    if sd <= 0 or n_per_arm <= 0:
        return 1.0 if delta != 0 else alpha
    se = sd * math.sqrt(2.0 / n_per_arm)
    q = float(sps.norm.ppf(1 - alpha / 2))
    return float(sps.norm.cdf(abs(delta) / se - q) + sps.norm.cdf(-abs(delta) / se - q))


def sample_size_two_sample(sd: float, delta: float, *, alpha: float = 0.05,
                           power: float = 0.8) -> int:
    """Users per arm for a two-sided two-sample z-test to reach ``power`` at ``delta``.

    Raises:
        ValueError: ``delta == 0`` or ``power`` outside (alpha, 1).
    """
    _check_alpha(alpha)
    if delta == 0 or not alpha < power < 1:
        raise ValueError(f"need delta != 0 and alpha < power < 1, got {delta}, {power}")
    q = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    return int(math.ceil(2 * (q * sd / delta) ** 2))


__all__ = [
    "BayesResult", "CupedResult", "MeanTest", "ProportionTest", "SRMResult", "SequentialResult",
    "beta_binomial", "cuped", "msprt", "msprt_lambda", "power_two_sample", "prob_beat_exact",
    "sample_size_two_sample", "srm_test", "two_proportion_ztest", "welch_ttest",
]
