"""Off-policy estimators from logged exposures, checked against Open Bandit Pipeline.

``obp`` (st-tech/zr-obp) pins numpy 1.23 / pandas 1.5 / scikit-learn 1.1 and cannot be
installed next to numpy 2 and pandas 3, so its estimator formulas are ported below as an
independent reference, in obp's own data layout (``action_dist`` and the reward model as
``(n_rounds, n_actions, len_list)`` tensors, one round per shown slot). Source:
``obp/ope/estimators.py`` at commit 51eba00f0dda5c26c1fa6826f544c60de485da52,
``InverseProbabilityWeighting._estimate_round_rewards`` (``iw = action_dist[n, action,
position] / pscore``; ``reward * iw``), ``SelfNormalizedInverseProbabilityWeighting``
(``reward * iw / iw.mean()``), ``DirectMethod`` (``np.average(q_hat[n, :, position],
weights=action_dist[n, :, position], axis=1)``) and ``DoublyRobust`` (DM term plus
``iw * (reward - q_hat[n, action, position])``); every ``estimate_policy_value`` is the
mean of the round rewards.

The SONA side reads the same data back from a real repository: exposures logged with
list-level exploration propensities, clicks recorded as events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from sona.ab import ope
from sona.ab.records import ExposedItem, OutcomeEvent, VariantSpec
from sona.ab.repository import ExperimentRepository

# --- obp reference (ported formulas, obp's tensor layout) ------------------------------------

def obp_ipw(reward, action, position, pscore, action_dist):  # type: ignore[no-untyped-def]
    iw = action_dist[np.arange(action.shape[0]), action, position] / pscore
    return (reward * iw).mean()


def obp_snipw(reward, action, position, pscore, action_dist):  # type: ignore[no-untyped-def]
    iw = action_dist[np.arange(action.shape[0]), action, position] / pscore
    return (reward * iw / iw.mean()).mean()


def obp_dm(action_dist, q_hat, position):  # type: ignore[no-untyped-def]
    n = position.shape[0]
    return np.average(q_hat[np.arange(n), :, position], weights=action_dist[np.arange(n), :,
                                                                           position],
                      axis=1).mean()


def obp_dr(reward, action, position, pscore, action_dist, q_hat):  # type: ignore[no-untyped-def]
    n = action.shape[0]
    iw = action_dist[np.arange(n), action, position] / pscore
    q_at_pos = q_hat[np.arange(n), :, position]
    q_factual = q_hat[np.arange(n), action, position]
    pi_e = action_dist[np.arange(n), :, position]
    return (np.average(q_at_pos, weights=pi_e, axis=1) + iw * (reward - q_factual)).mean()


# --- logged data through the repository -----------------------------------------------------

N_ITEMS, K, EPS = 12, 4, 0.4


@dataclass
class Logged:
    frame: pd.DataFrame
    target: dict[str, list[str]]
    truth: float  # true per-slot value of the target policy
    attract: np.ndarray
    exam: np.ndarray


def _log(repo: ExperimentRepository, n_users: int, seed: int) -> Logged:
    rng = np.random.default_rng(seed)
    attract = rng.uniform(0.1, 0.9, N_ITEMS)
    exam = 1.0 / (1.0 + np.arange(K))
    items = [f"i{a}" for a in range(N_ITEMS)]
    behaviour = list(np.argsort(-(attract + rng.normal(0, 0.4, N_ITEMS))))  # noisy ranking
    target_order = [items[a] for a in np.argsort(-attract)]  # the candidate: true order
    exp = repo.create_experiment("ope", [VariantSpec("a", 0.5), VariantSpec("b", 0.5)])
    exp = repo.set_status(exp.id, "running")
    target = {}
    for u in range(n_users):
        user = f"u{u}"
        variant = repo.assign(exp, user)
        assert variant is not None
        picks, props = ope.explore_list(N_ITEMS, K, EPS, rng)
        shown = [int(behaviour[i]) for i in picks]
        exposure = repo.record_exposure(exp, variant, user, [
            ExposedItem(items[a], p, float(attract[a]), prop)
            for p, (a, prop) in enumerate(zip(shown, props, strict=True))])
        clicks = [OutcomeEvent(f"{user}-{p}", user, "click", item_id=items[a], position=p,
                               exposure_id=exposure)
                  for p, a in enumerate(shown) if rng.random() < attract[a] * exam[p]]
        if clicks:
            repo.record_events(clicks)
        target[user] = target_order
    truth = float(np.mean([attract[int(target_order[p][1:])] * exam[p] for p in range(K)]))
    return Logged(repo.exposure_item_frame(repo.get("ope")), target, truth, attract, exam)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    repo = ExperimentRepository(f"sqlite:///{tmp_path_factory.mktemp('ope') / 'ab.db'}")
    data = _log(repo, 300, seed=7)
    repo.close()
    return data


def test_estimators_equal_the_obp_reference(logged: Logged) -> None:
    frame = logged.frame
    model = ope.CoecModel.fit(frame["item_id"].tolist(), frame["position"], frame["reward"])
    ours = ope.evaluate_policy(frame, logged.target, model=model)
    # the same rounds in obp's layout
    n = len(frame)
    action = frame["item_id"].str[1:].astype(int).to_numpy()
    position = frame["position"].to_numpy()
    reward = frame["reward"].to_numpy()
    pscore = frame["propensity"].to_numpy()
    action_dist = np.zeros((n, N_ITEMS, K))
    for row, user in enumerate(frame["user_id"]):
        for p, item in enumerate(logged.target[user][:K]):
            action_dist[row, int(item[1:]), p] = 1.0
    q_hat = np.zeros((n, N_ITEMS, K))
    for p in range(K):
        q_hat[:, :, p] = model.predict([f"i{a}" for a in range(N_ITEMS)], [p] * N_ITEMS)
    assert ours["ips"].value == pytest.approx(
        obp_ipw(reward, action, position, pscore, action_dist), rel=1e-12)
    assert ours["snips"].value == pytest.approx(
        obp_snipw(reward, action, position, pscore, action_dist), rel=1e-12)
    assert ours["dm"].value == pytest.approx(obp_dm(action_dist, q_hat, position), rel=1e-12)
    assert ours["dr"].value == pytest.approx(
        obp_dr(reward, action, position, pscore, action_dist, q_hat), rel=1e-12)
    values = " | ".join(f"{k} {ours[k].value:.4f}" for k in ("logged", "ips", "snips", "dm", "dr"))
    print(f"\nOPE per-slot value of the candidate: truth {logged.truth:.4f} | {values}")


def test_estimates_cover_the_true_value(logged: Logged) -> None:
    out = ope.evaluate_policy(logged.frame, logged.target)
    for name in ("ips", "snips", "dr"):
        est = out[name]
        assert est.ci_low <= logged.truth <= est.ci_high, (name, est, logged.truth)
        assert 0 < est.effective_n < est.n
    # the candidate (true order) is better than what was logged
    assert out["dr"].value > out["logged"].value
    assert out["dr"].se < out["ips"].se  # the reward model reduces variance


def test_explore_list_propensities_are_the_marginals() -> None:
    rng = np.random.default_rng(0)
    pool, k, eps, n = 5, 3, 0.4, 40_000
    seen = np.zeros((pool, k))
    for _ in range(n):
        picks, props = ope.explore_list(pool, k, eps, rng)
        assert len(set(picks)) == k
        for slot, (i, p) in enumerate(zip(picks, props, strict=True)):
            seen[i, slot] += 1
            assert p == pytest.approx((1 - eps) * (i == slot) + eps / pool)
    expected = (1 - eps) * np.eye(pool, k) + eps / pool
    assert np.allclose(seen / n, expected, atol=0.01)
    assert ope.explore_list(0, 3, 0.5, rng) == ([], [])
    assert ope.explore_list(2, 3, 0.0, rng) == ([0, 1], [1.0, 1.0])


def test_ips_known_answer_and_validation() -> None:
    est = ope.ips([1.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.25, 1.0], [1.0, 1.0, 0.0, 1.0])
    assert est.value == pytest.approx((2.0 + 0.0 + 0.0 + 1.0) / 4)
    assert ope.ips([1.0, 1.0], [0.5, 0.5], [1.0, 1.0], clip=1.5).value == 1.5
    assert ope.snips([1.0, 0.0], [0.5, 0.25], [1.0, 1.0]).value == pytest.approx(2 / 6)
    assert np.isnan(ope.snips([1.0], [0.5], [0.0]).value)
    with pytest.raises(ValueError, match="propensities"):
        ope.ips([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="same non-zero length"):
        ope.ips([1.0, 2.0], [0.5], [1.0])
    with pytest.raises(ValueError, match="no logged exposures"):
        ope.evaluate_policy(pd.DataFrame(columns=["reward"]), {})
