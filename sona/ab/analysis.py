"""The A/B report: per-variant counts and rates, SRM guard, frequentist, CUPED, Bayesian and
sequential comparisons of every treatment with the control.

``analyze(repo, "my-experiment")`` reads the store (:mod:`sona.ab.queries`) and calls
:func:`analyze_frames`, which is pure (frames in, :class:`ABReport` out). Users count in
their assigned arm once exposed; per user the metric is the sum of its event values, and
"converted" means that sum is positive. The pre-period covariate of CUPED is the same sum
over the user's events before the experiment started; the sequential test replays
``n_looks`` interim looks in exposure-time order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sona.ab import stats
from sona.ab.records import Experiment
from sona.io import json_safe

if TYPE_CHECKING:
    from sona.ab.repository import ExperimentRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """Counts and rates of one arm."""

    name: str
    weight: float
    users: int  # exposed users
    exposures: int
    converted: int  # users with a positive metric sum
    conversion_rate: float
    events: int
    events_per_exposure: float
    mean: float  # per-user metric sum
    sd: float
    pre_mean: float  # per-user pre-period sum (CUPED covariate)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One treatment against the control."""

    variant: str
    control: str
    proportion: stats.ProportionTest | None
    welch: stats.MeanTest | None
    cuped: stats.CupedResult | None
    bayes: stats.BayesResult
    sequential: stats.SequentialResult | None

    @property
    def significant(self) -> bool:
        """Welch's (CUPED-adjusted where available) interval excludes 0."""
        test = self.cuped.test if self.cuped is not None else self.welch
        return test is not None and (test.ci_low > 0 or test.ci_high < 0)


@dataclass(frozen=True)
class ABReport:
    """Everything ``sona ab report`` shows, logs and plots."""

    experiment: dict[str, Any]
    metric: str
    alpha: float
    variants: list[VariantSummary]
    srm: stats.SRMResult
    comparisons: list[Comparison]
    computed_at: float
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def variant(self, name: str) -> VariantSummary:
        """A variant summary by name."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r} in the report")

    def comparison(self, name: str) -> Comparison:
        """The comparison of treatment ``name`` with the control."""
        for c in self.comparisons:
            if c.variant == name:
                return c
        raise KeyError(f"no comparison for variant {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``significant`` per comparison; NaN and infinities as None)."""
        out = asdict(self)
        for c, d in zip(self.comparisons, out["comparisons"], strict=True):
            d["significant"] = c.significant
        return json_safe(out)  # type: ignore[no-any-return]


def _looks(units: pd.DataFrame, outcomes: pd.DataFrame, n_looks: int
           ) -> list[tuple[float, pd.Series]]:
    """Per look: its time and the per-user metric sum known by then (index: user_id)."""
    times = np.sort(units["first_exposure_at"].to_numpy(dtype=np.float64))
    if len(times) == 0:
        return []
    # look k sees the first k/n_looks of the exposed users
    cuts = np.unique(times[np.ceil(np.linspace(len(times) / n_looks, len(times), n_looks))
                           .astype(int) - 1])
    ends = list(cuts[:-1]) + [math.inf]
    rows = []
    for end in ends:
        seen = outcomes[outcomes["recorded_at"] <= end]
        rows.append((end, seen.groupby("user_id")["value"].sum()))
    return rows


def _sequential(units: pd.DataFrame, outcomes: pd.DataFrame, control: str, variant: str,
                tau: float, alpha: float, n_looks: int) -> stats.SequentialResult:
    looks = []
    for end, sums in _looks(units, outcomes, n_looks):
        now = units[units["first_exposure_at"] <= end]
        y = sums.reindex(now["user_id"]).fillna(0.0).to_numpy()
        arm = now["variant"].to_numpy()
        looks.append((y[arm == control], y[arm == variant]))
    return stats.msprt(looks, tau=tau, alpha=alpha)


def analyze_frames(experiment: Experiment, users: pd.DataFrame, outcomes: pd.DataFrame, *,
                   metric: str, alpha: float = 0.05, srm_threshold: float = 0.001,
                   mde: float = 0.05, n_looks: int = 20, tau: float | None = None,
                   seed: int = 0) -> ABReport:
    """Build the report from a :func:`~sona.ab.queries.user_frame` and its outcome frame.

    Args:
        experiment: the experiment (arms, weights, control).
        users: one row per assigned user (columns of ``queries.USER_COLUMNS``).
        outcomes: attributed events of ``metric`` (user_id, variant, value, recorded_at).
        metric: the analysed metric name.
        alpha: test level (intervals are ``1 - alpha``).
        srm_threshold: SRM flag when the chi-square p-value is below this.
        mde: relative minimum detectable effect; sets the mSPRT mixture scale
            ``tau = mde x control mean`` unless ``tau`` is given (it uses the control's
            level, never the difference, so the always-valid guarantee holds closely).
        n_looks: interim looks replayed by the sequential test.
        seed: seed of the Bayesian sampler.
    """
    units = users[users["exposures"] > 0]
    control = experiment.control.name
    summaries, arms = [], {}
    for v in experiment.variants:
        rows = units[units["variant"] == v.name]
        y = rows["value"].to_numpy(np.float64)
        arms[v.name] = rows
        n = len(rows)
        summaries.append(VariantSummary(
            v.name, v.weight, n, int(rows["exposures"].sum()), int((y > 0).sum()),
            float((y > 0).mean()) if n else 0.0, int(rows["events"].sum()),
            float(rows["events"].sum() / rows["exposures"].sum()) if n else 0.0,
            float(y.mean()) if n else 0.0, float(y.std(ddof=1)) if n > 1 else 0.0,
            float(rows["pre_value"].mean()) if n else 0.0))
    srm = stats.srm_test([s.users for s in summaries], experiment.weights,
                         threshold=srm_threshold)
    if srm.flagged:
        log.warning("experiment %s: sample-ratio mismatch (p=%.2g): do not trust the results",
                    experiment.name, srm.p_value)
    c_rows = arms[control]
    comparisons = []
    for v in experiment.variants:
        if v.name == control:
            continue
        t_rows = arms[v.name]
        yc, yt = c_rows["value"].to_numpy(np.float64), t_rows["value"].to_numpy(np.float64)
        xc_, nc_, xt_, nt_ = int((yc > 0).sum()), len(yc), int((yt > 0).sum()), len(yt)
        enough = nc_ >= 2 and nt_ >= 2
        scale = tau if tau is not None else mde * abs(float(yc.mean()) if nc_ else 0.0)
        has_pre = enough and (units["pre_value"].var() or 0.0) > 0
        comparisons.append(Comparison(
            v.name, control,
            stats.two_proportion_ztest(xc_, nc_, xt_, nt_, alpha=alpha)
            if nc_ and nt_ else None,
            stats.welch_ttest(yc, yt, alpha=alpha) if enough else None,
            stats.cuped(yc, yt, c_rows["pre_value"], t_rows["pre_value"], alpha=alpha)
            if has_pre else None,
            stats.beta_binomial(xc_, nc_, xt_, nt_, seed=seed),
            _sequential(units, outcomes, control, v.name, scale if scale > 0 else mde, alpha,
                        n_looks) if enough else None))
    return ABReport(
        experiment={k: experiment.to_dict()[k] for k in (
            "id", "name", "status", "traffic_allocation", "primary_metric", "started_at",
            "completed_at")},
        metric=metric, alpha=alpha, variants=summaries, srm=srm, comparisons=comparisons,
        computed_at=time.time(),
        models={v.name: v.config.to_dict() for v in experiment.variants})


def analyze(repo: ExperimentRepository, key: str, *, metric: str | None = None,
            alpha: float = 0.05, srm_threshold: float = 0.001, mde: float = 0.05,
            n_looks: int = 20, tau: float | None = None,
            covariate: Mapping[str, float] | None = None, seed: int = 0) -> ABReport:
    """Analyse experiment ``key`` (id or name) from the store.

    Args:
        metric: defaults to the experiment's primary metric.
        covariate: per-user CUPED covariate replacing the pre-period sums (users missing
            from it get 0).
        (others): see :func:`analyze_frames`.
    """
    experiment = repo.get(key)
    name = metric or experiment.primary_metric
    users = repo.user_frame(experiment, name)
    if covariate is not None:
        users["pre_value"] = users["user_id"].map(covariate).fillna(0.0).astype("float64")
    return analyze_frames(experiment, users, repo.outcome_frame(experiment, name), metric=name,
                          alpha=alpha, srm_threshold=srm_threshold, mde=mde, n_looks=n_looks,
                          tau=tau, seed=seed)


__all__ = ["ABReport", "Comparison", "VariantSummary", "analyze", "analyze_frames", "json_safe"]
