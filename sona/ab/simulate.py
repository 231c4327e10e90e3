"""``sona ab simulate``: drive a running SONA server with synthetic ML-100K users.

Phases, all over HTTP against the server:

1. **onboard**: each user sends ``onboard_events`` viewing events of items its ML-100K
   original liked (``/api/v1/profile/update``), so the model serves it personal lists;
2. **pre-period**: ``pre_sessions`` requests per user with no experiment running; clicks
   go to ``/api/v1/events`` unattributed: the CUPED covariate;
3. **plan**: from the lists just served and the known click model, the expected mean and
   variance of clicks per user in the experiment window give the *stated power* to detect
   ``uplift`` (Welch, and with CUPED at the predicted ``1 - rho^2``), before any data;
4. **experiment**: the two-arm experiment starts; ``sessions`` requests per user, each
   tagged with the user's variant and logged as an exposure by the server; clicks (lifted
   by ``1 + uplift`` in the treatment) and watch time are posted as events carrying the
   exposure id. ``broken_split`` drops exactly that fraction of treatment users before
   they reach the server (they are located with the same public assignment hash): the
   report's SRM guard must fire.
5. **report**: ``GET /api/v1/experiments/{id}/report``;
6. **power check**: the clicks are re-drawn ``replicates`` times on the same users, arms
   and served lists, and the share of re-draws in which the test detects the uplift is
   the empirical power, to compare with the stated one.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from scipy import stats as sps

from sona.ab.assignment import choose_variant
from sona.ab.stats import cuped, power_two_sample, welch_ttest
from sona.ab.users import SyntheticUsers
from sona.errors import SonaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What ``sona ab simulate`` does (see the module docstring)."""

    # synthetic users (copies of ML-100K users)
    users: int = 2000
    # requests per user while the experiment runs
    sessions: int = 3
    # requests per user before it starts (the CUPED pre-period)
    pre_sessions: int = 2
    # liked items sent as viewing events per user (6: warm, below the LoRA threshold of 10)
    onboard_events: int = 6
    # items per request
    limit: int = 10
    # true relative uplift of the treatment's click probability
    uplift: float = 0.05
    # fraction of treatment users lost before they reach the server (0 = a sound split)
    broken_split: float = 0.0
    # click probability scale of the user model
    base_click: float = 0.3
    # concurrent client threads
    concurrency: int = 8
    # experiment name (must be new on the server)
    experiment: str = "sim"
    # variant configs; equal by default, so the injected uplift is the whole true effect
    control_config: dict[str, Any] = field(default_factory=dict)
    treatment_config: dict[str, Any] = field(default_factory=dict)
    # test level of the stated power
    alpha: float = 0.05
    # click re-draws that check the stated power empirically (0 = skip)
    replicates: int = 200
    # mark the experiment completed at the end (so later runs start on a quiet server)
    complete: bool = True
    seed: int = 0


@dataclass
class SimulationResult:
    """What happened, the power stated before the experiment, and the server's report."""

    experiment_id: str
    experiment: str
    users: int
    dropped_users: int
    requests: int
    events: int
    seconds: float
    true_uplift: float
    plan: dict[str, float]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


class Client:
    """A minimal JSON client with one keep-alive connection per thread."""

    def __init__(self, url: str, key: str | None, *, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise SonaError(f"server URL must be http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.key = key
        self.timeout_s = timeout_s
        self._local = threading.local()
        self.requests = 0
        self._count = threading.Lock()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request (retried once on a dropped keep-alive connection)."""
        headers = {"content-type": "application/json"}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self._local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                with self._count:
                    self.requests += 1
                return resp.status, json.loads(payload) if payload else None
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """:meth:`call`, raising :class:`SonaError` unless the status is 200."""
        status, out = self.call(method, path, body)
        if status != 200:
            raise SonaError(f"{method} {path} -> {status}: {out}")
        return out


def _events_for(users: SyntheticUsers, u: int, resp: dict[str, Any], lift: float,
                rng: np.random.Generator, tag: str) -> list[dict[str, Any]]:
    items = [r["content_id"] for r in resp["recommendations"]]
    probs = users.click_probabilities(u, items, lift=lift)
    clicked = np.flatnonzero(rng.random(len(items)) < probs)
    rel = users.relevance(u, [items[p] for p in clicked])
    out = []
    for p, r in zip(clicked, rel, strict=True):
        common = {"user_id": users.user_ids[u], "item_id": items[p], "position": int(p),
                  "exposure_id": resp.get("exposure_id")}
        out.append({"event_id": f"{tag}-{p}-click", "metric": "click", "value": 1.0, **common})
        out.append({"event_id": f"{tag}-{p}-watch", "metric": "watch_time",
                    "value": float(np.round(r * rng.gamma(2.0, 30.0), 2)), **common})
    return [{k: v for k, v in e.items() if v is not None} for e in out]


def plan_power(expected: np.ndarray, variance: np.ndarray, *, sessions: int,
               pre_sessions: int, uplift: float, alpha: float) -> dict[str, float]:
    """Stated power from per-user expected clicks per request and their variance.

    With ``m_u`` expected clicks per request and ``v_u`` their Bernoulli variance, the
    experiment-window sum has mean ``S m_u`` and variance ``S^2 var(m) + S mean(v)`` over
    users (``S = sessions``); the pre-period sum shares ``m_u``, so
    ``rho^2 = (S P var(m))^2 / (var_exp * var_pre)`` (``P = pre_sessions``).
    """
    mean = sessions * float(expected.mean())
    var_m, mean_v = float(expected.var()), float(variance.mean())
    var_exp = sessions ** 2 * var_m + sessions * mean_v
    var_pre = pre_sessions ** 2 * var_m + pre_sessions * mean_v
    rho2 = (sessions * pre_sessions * var_m) ** 2 / (var_exp * var_pre) if var_pre > 0 else 0.0
    delta = uplift * mean
    sd, sd_cuped = math.sqrt(var_exp), math.sqrt(var_exp * (1 - rho2))
    q = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(0.8))
    return {"mean_clicks_per_user": mean, "sd_clicks_per_user": sd,
            "predicted_cuped_factor": 1 - rho2,
            "users_per_arm_for_80pct_power": math.ceil(2 * (q * sd / delta) ** 2)
            if delta else math.inf,
            "users_per_arm_for_80pct_power_cuped": math.ceil(2 * (q * sd_cuped / delta) ** 2)
            if delta else math.inf}


def _each(pool: ThreadPoolExecutor, fn: Callable[[int], Any], items: Iterable[int]) -> list[Any]:
    return list(pool.map(fn, items))


def simulate(url: str, key: str, users: SyntheticUsers, config: SimulationConfig
             ) -> SimulationResult:
    """Run the five phases against the server at ``url`` with an admin ``key``.

    Raises:
        SonaError: the server refused a request (the message names it).
    """
    start = time.perf_counter()
    client = Client(url, key)
    n = len(users)
    rng_master = np.random.default_rng(config.seed)
    seeds = rng_master.integers(0, 2**63, size=(n, 3))
    running = client.ok("GET", "/api/v1/experiments?status=running")["experiments"]
    if running:
        raise SonaError(f"experiments {[e['name'] for e in running]} are running on {url}: "
                        f"new users would join them first; complete them or use another "
                        f"server")
    created = client.ok("POST", "/api/v1/experiments", {
        "name": config.experiment, "description": f"simulated: uplift {config.uplift}",
        "variants": [{"name": "control", "weight": 0.5, "config": config.control_config},
                     {"name": "treatment", "weight": 0.5, "config": config.treatment_config}]})
    exp_id = created["experiment_id"]
    salt = client.ok("GET", f"/api/v1/experiments/{exp_id}")["salt"]
    posted = [0]
    lock = threading.Lock()

    def post_events(events: list[dict[str, Any]]) -> None:
        for i in range(0, len(events), 500):
            out = client.ok("POST", "/api/v1/events", {"events": events[i:i + 500]})
            with lock:
                posted[0] += out["recorded"]

    def onboard(u: int) -> None:
        liked = users.liked[u][:config.onboard_events]
        if not liked:
            return
        now = time.time()
        status, out = client.call("POST", "/api/v1/profile/update", {
            "user_id": users.user_ids[u], "viewing_events": [
                {"content_id": item, "timestamp": now - 60 * k, "completion_rate": 1.0,
                 "rating": 5} for k, item in enumerate(liked)]})
        if status != 200:
            log.warning("onboarding %s failed (%s): %s", users.user_ids[u], status, out)

    expected = np.zeros(n)
    variance = np.zeros(n)
    pre_probs: list[np.ndarray] = [np.zeros(0)] * n
    exp_probs: list[np.ndarray] = [np.zeros(0)] * n
    arms = np.full(n, -1)

    def pre(u: int) -> None:
        rng = np.random.default_rng(seeds[u, 0])
        events: list[dict[str, Any]] = []
        for s in range(config.pre_sessions):
            resp = client.ok("POST", "/api/v1/recommendations",
                             {"user_id": users.user_ids[u], "limit": config.limit})
            items = [r["content_id"] for r in resp["recommendations"]]
            probs = users.click_probabilities(u, items)
            expected[u] += probs.sum() / config.pre_sessions
            variance[u] += (probs * (1 - probs)).sum() / config.pre_sessions
            pre_probs[u] = np.concatenate([pre_probs[u], probs])
            events += _events_for(users, u, resp, 1.0, rng,
                                  f"{config.experiment}-pre-{users.user_ids[u]}-{s}")
        post_events(events)

    planned = np.array([choose_variant(salt, uid, [0.5, 0.5], 1.0) for uid in users.user_ids])
    dropped = drop_treatment(planned, config.broken_split, seed=config.seed)

    def during(u: int) -> None:
        rng = np.random.default_rng(seeds[u, 1])
        if dropped[u]:
            return  # lost before reaching the server
        events: list[dict[str, Any]] = []
        for s in range(config.sessions):
            resp = client.ok("POST", "/api/v1/recommendations",
                             {"user_id": users.user_ids[u], "limit": config.limit})
            tag = (resp["recommendations"][0].get("experiment_variant") or ":") \
                if resp["recommendations"] else ":"
            treated = tag.endswith(":treatment")
            arms[u] = 1 if treated else (0 if tag.endswith(":control") else -1)
            lift = 1.0 + config.uplift if treated else 1.0
            exp_probs[u] = np.concatenate([exp_probs[u], users.click_probabilities(
                u, [r["content_id"] for r in resp["recommendations"]])])
            events += _events_for(users, u, resp, lift, rng,
                                  f"{config.experiment}-{users.user_ids[u]}-{s}")
        post_events(events)

    with ThreadPoolExecutor(config.concurrency) as pool:
        if config.onboard_events > 0:
            _each(pool, onboard, range(n))
        if config.pre_sessions > 0:
            _each(pool, pre, range(n))
        plan = plan_power(expected, variance, sessions=config.sessions,
                          pre_sessions=max(config.pre_sessions, 1), uplift=config.uplift,
                          alpha=config.alpha) if config.pre_sessions > 0 else {}
        if plan:
            half = n / 2
            sd = plan["sd_clicks_per_user"]
            plan["stated_power"] = power_two_sample(
                sd, config.uplift * plan["mean_clicks_per_user"], half, alpha=config.alpha)
            plan["stated_power_cuped"] = power_two_sample(
                sd * math.sqrt(plan["predicted_cuped_factor"]),
                config.uplift * plan["mean_clicks_per_user"], half, alpha=config.alpha)
            log.info("plan: %s", plan)
        client.ok("PUT", f"/api/v1/experiments/{exp_id}/status", {"status": "running"})
        _each(pool, during, range(n))
    if config.complete:
        client.ok("PUT", f"/api/v1/experiments/{exp_id}/status", {"status": "completed"})
    report = client.ok("GET", f"/api/v1/experiments/{exp_id}/report")
    if config.replicates > 0 and (arms == 0).sum() > 1 and (arms == 1).sum() > 1:
        plan.update(replicate_power(pre_probs, exp_probs, arms, uplift=config.uplift,
                                    alpha=config.alpha, replicates=config.replicates,
                                    seed=config.seed))
    return SimulationResult(exp_id, config.experiment, n, int(dropped.sum()), client.requests,
                            posted[0], time.perf_counter() - start, config.uplift, plan, report)


def drop_treatment(arms: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """The treatment users a broken split loses: exactly ``round(fraction * n_treatment)``.

    The count is fixed rather than one coin flip per user: per-user flips added their
    binomial noise to the split's, and a 300-user test with half the treatment dropped
    then missed the SRM flag about one run in ten (issue 13). Which users go is a seeded
    permutation, so the same arms and seed always drop the same users.

    Args:
        arms: variant index per user (1 = treatment), shape ``(n,)``.
        fraction: share of treatment users to drop, in ``[0, 1]``.
        seed: seed of the permutation.

    Returns:
        Boolean mask of dropped users, shape ``(n,)``.
    """
    treated = np.flatnonzero(np.asarray(arms) == 1)
    n_drop = round(fraction * len(treated))
    out = np.zeros(len(arms), bool)
    out[np.random.default_rng([seed, 2]).permutation(treated)[:n_drop]] = True
    return out


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def replicate_power(pre_probs: list[np.ndarray], exp_probs: list[np.ndarray],
                    arms: np.ndarray, *, uplift: float, alpha: float, replicates: int,
                    seed: int = 0) -> dict[str, float]:
    """Detection rate over re-drawn clicks: the stated power, checked empirically.

    Keeps the users, their arms and the lists the server served, re-draws every click
    from the click model ``replicates`` times, and counts how often Welch's test (raw and
    CUPED-adjusted, two-sided at ``alpha``) finds the treatment better.
    """
    keep = arms >= 0
    pre = _padded([p for p, k in zip(pre_probs, keep, strict=True) if k])
    during = _padded([p for p, k in zip(exp_probs, keep, strict=True) if k])
    treat = arms[keep] == 1
    during = np.where(treat[:, None], np.clip(during * (1 + uplift), 0, 1), during)
    rng = np.random.default_rng(seed)
    raw = cup = 0
    for _ in range(replicates):
        y = (rng.random(during.shape) < during).sum(axis=1).astype(np.float64)
        x = (rng.random(pre.shape) < pre).sum(axis=1).astype(np.float64)
        w = welch_ttest(y[~treat], y[treat], alpha=alpha)
        c = cuped(y[~treat], y[treat], x[~treat], x[treat], alpha=alpha).test
        raw += w.p_value < alpha and w.diff > 0
        cup += c.p_value < alpha and c.diff > 0
    return {"replicates": float(replicates), "empirical_power": raw / replicates,
            "empirical_power_cuped": cup / replicates}


__all__ = ["Client", "SimulationConfig", "SimulationResult", "drop_treatment", "plan_power",
           "replicate_power", "simulate"]
