"""Off-policy evaluation of a candidate ranking policy from logged exposures.

Every shown slot is one logged round ``(context, position p, item a, reward r)`` with the
marginal propensity ``pi_b(a | x, p)`` the serving policy had for putting ``a`` in slot
``p``: 1.0 for a deterministic list; :func:`explore_list` (list-level epsilon exploration)
makes it ``(1 - eps) [a = greedy_p] + eps / pool`` and gives every pool item support in
every slot. The estimators assume a reward depends on the item and its slot only (a
position-based click model), as Open Bandit Pipeline's position-wise estimators do (Saito
et al., NeurIPS 2021 datasets track). For a target policy ``pi_e`` with
``w = pi_e(a | x, p) / pi_b(a | x, p)``, the per-slot value estimators are:

- IPS   ``mean(w r)`` (Strehl et al. 2010), optionally with ``w`` clipped at ``clip``;
- SNIPS ``sum(w r) / sum(w)`` (Swaminathan & Joachims 2015);
- DM    ``mean(q(x, pi_e))`` with a reward model ``q``;
- DR    ``mean(q(x, pi_e) + w (r - q(x, a)))`` (Dudik, Erhan, Langford & Li 2014).

The reward model here is COEC, clicks over expected clicks (Zhang & Jones 2007): a
position prior ``ctr_p`` times a smoothed item factor ``(clicks_a + m) / (expected_a +
m)`` with ``expected_a = sum ctr_p`` over the item's impressions. Intervals are normal
approximations from the per-round influence values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OPEEstimate:
    """One estimator's policy value (expected reward per slot) with a normal interval."""

    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int  # logged rounds (slots)
    effective_n: float  # (sum w)^2 / sum w^2: how many rounds the weights really use

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def explore_list(pool: int, limit: int, epsilon: float, rng: np.random.Generator
                 ) -> tuple[list[int], list[float]]:
    """List-level epsilon exploration over a ranked pool of ``pool`` candidates.

    With probability ``1 - epsilon`` the list is the pool's top ``limit`` (the greedy
    list); otherwise it is a uniformly random ordered sample of ``limit`` pool items.
    The marginal probability of item ``a`` in slot ``p`` is therefore exactly
    ``(1 - epsilon) [a is the pool's p-th item] + epsilon / pool``, whatever the other
    slots show: the propensity IPS needs per slot.

    Returns:
        ``(pool indices shown, their propensities)``, ``min(limit, pool)`` of each.
    """
    k = min(limit, pool)
    if pool == 0:
        return [], []
    picks = [int(i) for i in rng.permutation(pool)[:k]] if rng.random() < epsilon \
        else list(range(k))
    props = [(1.0 - epsilon) * (i == slot) + epsilon / pool for slot, i in enumerate(picks)]
    return picks, props


def _inputs(reward: ArrayLike, propensity: ArrayLike, target_prob: ArrayLike
            ) -> tuple[Floats, Floats, Floats]:
    r = np.asarray(reward, np.float64).ravel()
    p = np.asarray(propensity, np.float64).ravel()
    pe = np.asarray(target_prob, np.float64).ravel()
    if not (len(r) == len(p) == len(pe)) or len(r) == 0:
        raise ValueError(f"reward, propensity and target_prob need the same non-zero length, "
                         f"got {len(r)}, {len(p)}, {len(pe)}")
    if np.any(~(p > 0)) or np.any(p > 1):
        raise ValueError("logged propensities must be in (0, 1]")
    if np.any(pe < 0) or np.any(pe > 1) or not np.all(np.isfinite(r)):
        raise ValueError("target probabilities must be in [0, 1] and rewards finite")
    return r, p, pe


def _estimate(name: str, rounds: Floats, value: float, w: Floats, alpha: float) -> OPEEstimate:
    n = len(rounds)
    se = float(rounds.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    q = float(sps.norm.ppf(1 - alpha / 2))
    ess = float(w.sum() ** 2 / (w ** 2).sum()) if (w ** 2).sum() > 0 else 0.0
    return OPEEstimate(name, float(value), se, value - q * se, value + q * se, n, ess)


def ips(reward: ArrayLike, propensity: ArrayLike, target_prob: ArrayLike, *,
        clip: float = math.inf, alpha: float = 0.05) -> OPEEstimate:
    """Inverse propensity scoring ``mean(min(w, clip) r)``."""
    r, p, pe = _inputs(reward, propensity, target_prob)
    w = np.minimum(pe / p, clip)
    rounds = w * r
    return _estimate("ips", rounds, float(rounds.mean()), w, alpha)


def snips(reward: ArrayLike, propensity: ArrayLike, target_prob: ArrayLike, *,
          alpha: float = 0.05) -> OPEEstimate:
    """Self-normalised IPS ``sum(w r) / sum(w)`` (NaN when no round has support)."""
    r, p, pe = _inputs(reward, propensity, target_prob)
    w = pe / p
    if w.sum() == 0:
        return OPEEstimate("snips", math.nan, math.nan, math.nan, math.nan, len(r), 0.0)
    value = float((w * r).sum() / w.sum())
    influence = w * (r - value) / w.mean() + value  # delta-method rounds: same mean, right se
    return _estimate("snips", influence, value, w, alpha)


def direct_method(q_target: ArrayLike, *, alpha: float = 0.05) -> OPEEstimate:
    """Direct method ``mean(q(x, pi_e))``."""
    q = np.asarray(q_target, np.float64).ravel()
    return _estimate("dm", q, float(q.mean()), np.ones_like(q), alpha)


def doubly_robust(reward: ArrayLike, propensity: ArrayLike, target_prob: ArrayLike,
                  q_logged: ArrayLike, q_target: ArrayLike, *, clip: float = math.inf,
                  alpha: float = 0.05) -> OPEEstimate:
    """Doubly robust ``mean(q(x, pi_e) + min(w, clip) (r - q(x, a)))``.

    Args:
        q_logged: reward model at the logged item and slot, ``q(x_i, a_i, p_i)``.
        q_target: the model's expectation under the target, ``sum_a pi_e(a|x_i,p_i) q(x_i,a,p_i)``.
    """
    r, p, pe = _inputs(reward, propensity, target_prob)
    ql = np.asarray(q_logged, np.float64).ravel()
    qt = np.asarray(q_target, np.float64).ravel()
    if not len(ql) == len(qt) == len(r):
        raise ValueError("q_logged and q_target need one value per logged round")
    w = np.minimum(pe / p, clip)
    rounds = qt + w * (r - ql)
    return _estimate("dr", rounds, float(rounds.mean()), w, alpha)


@dataclass(frozen=True)
class CoecModel:
    """Clicks-over-expected-clicks reward model ``q(a, p) = ctr_p * factor_a``."""

    position_ctr: dict[int, float]
    item_factor: dict[str, float]
    prior: float

    @classmethod
    def fit(cls, items: Sequence[Any], positions: ArrayLike, rewards: ArrayLike, *,
            prior: float = 20.0) -> CoecModel:
        """Fit on logged rounds; ``prior`` pseudo-impressions shrink rare items to 1.0."""
        frame = pd.DataFrame({"item": [str(i) for i in items],
                              "pos": np.asarray(positions, np.int64),
                              "r": np.asarray(rewards, np.float64)})
        ctr = frame.groupby("pos")["r"].mean()
        frame["expected"] = frame["pos"].map(ctr)
        per_item = frame.groupby("item")[["r", "expected"]].sum()
        factor = (per_item["r"] + prior * 1.0) / (per_item["expected"] + prior)
        return cls({int(k): float(v) for k, v in ctr.items()},
                   {str(k): float(v) for k, v in factor.items()}, prior)

    def predict(self, items: Sequence[Any], positions: ArrayLike) -> Floats:
        """``q(a, p)`` per pair; unseen items get factor 1, unseen slots the lowest ctr."""
        floor = min(self.position_ctr.values()) if self.position_ctr else 0.0
        pos = np.asarray(positions, np.int64)
        ctr = np.array([self.position_ctr.get(int(p), floor) for p in pos])
        fac = np.array([self.item_factor.get(str(a), 1.0) for a in items])
        return np.clip(ctr * fac, 0.0, None)


def target_probabilities(logged: pd.DataFrame, target: Mapping[str, Sequence[Any]], *,
                         key: str = "user_id") -> tuple[Floats, list[Any]]:
    """``pi_e(a_i | x_i, p_i)`` of a deterministic ranking, and its item per round.

    Args:
        logged: :func:`~sona.ab.queries.exposure_item_frame` rows.
        target: the candidate's ranked items per ``key`` value (user or exposure id).
        key: ``"user_id"`` or ``"exposure_id"``.

    Returns:
        ``(prob, target_items)``: 1.0 where the candidate puts the logged item in the
        logged slot, else 0.0; and the candidate's item in that slot (None past its list).
    """
    probs = np.zeros(len(logged))
    chosen: list[Any] = []
    for i, (k, pos, item) in enumerate(zip(logged[key], logged["position"], logged["item_id"],
                                           strict=True)):
        ranking = target.get(k) or target.get(str(k)) or []
        pick = str(ranking[pos]) if pos < len(ranking) else None
        chosen.append(pick)
        probs[i] = 1.0 if pick is not None and pick == str(item) else 0.0
    return probs, chosen


def evaluate_policy(logged: pd.DataFrame, target: Mapping[str, Sequence[Any]], *,
                    key: str = "user_id", model: CoecModel | None = None,
                    clip: float = math.inf, alpha: float = 0.05) -> dict[str, OPEEstimate]:
    """IPS, SNIPS, DM and DR per-slot values of a candidate ranking, plus the logged value.

    Args:
        logged: rows of :func:`~sona.ab.queries.exposure_item_frame` (one per shown slot).
        target: candidate ranking per user (or exposure id, with ``key="exposure_id"``).
        model: reward model for DM/DR (default: COEC fitted on ``logged``).
        clip: importance-weight cap for IPS and DR.

    Raises:
        ValueError: ``logged`` is empty.
    """
    if logged.empty:
        raise ValueError("no logged exposures to evaluate from")
    reward = logged["reward"].to_numpy(np.float64)
    prop = logged["propensity"].to_numpy(np.float64)
    pos = logged["position"].to_numpy(np.int64)
    model = model or CoecModel.fit(logged["item_id"].tolist(), pos, reward)
    pe, chosen = target_probabilities(logged, target, key=key)
    q_logged = model.predict(logged["item_id"].tolist(), pos)
    q_target = np.where([c is None for c in chosen], 0.0,
                        model.predict(["" if c is None else c for c in chosen], pos))
    return {
        "logged": _estimate("logged", reward, float(reward.mean()), np.ones_like(reward), alpha),
        "ips": ips(reward, prop, pe, clip=clip, alpha=alpha),
        "snips": snips(reward, prop, pe, alpha=alpha),
        "dm": direct_method(q_target, alpha=alpha),
        "dr": doubly_robust(reward, prop, pe, q_logged, q_target, clip=clip, alpha=alpha),
    }


__all__ = ["CoecModel", "OPEEstimate", "direct_method", "doubly_robust", "evaluate_policy",
           "explore_list", "ips", "snips", "target_probabilities"]
