"""What SONA's layers cost on top of raw ``implicit``: the ALS pipeline timed both ways.

One pipeline, three stages, on one training split:

- ``fit``: SONA ``ALS(config).fit(train)`` (ids -> CSR, confidence, implicit fit) against a
  hand-written loop that gets the training CSR ready-made and only applies the confidence
  and calls implicit's CPU ALS with the same hyper-parameters;
- ``recommend``: top-``k`` of every training user, seen items excluded (SONA
  ``recommend`` with external ids vs ``model.recommend(userids, user_items[userids], N=k)``);
- ``evaluate``: nDCG@k against the test split (SONA ``metrics.evaluate`` from the
  ``Interactions`` vs the same :func:`~sona.metrics.ndcg_at_k` on index lists and relevance
  sets the loop builds itself).

Both sides run in every repeat (alternating, after one untimed warm-up of each), BLAS is
limited to one thread for both fits as implicit recommends, and the medians per stage are
reported. Both sides fit the same model from the same seed, so their nDCG must agree:
:func:`run_overhead` checks it, which keeps the comparison honest.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from sona.config import to_dict
from sona.data.interactions import Interactions
from sona.metrics import evaluate, ndcg_at_k
from sona.models.als import ALS, ALSConfig, confidence

log = logging.getLogger(__name__)

#: stages in pipeline order; "total" is their per-repeat sum
STAGES: tuple[str, ...] = ("fit", "recommend", "evaluate")


@dataclass(frozen=True, slots=True)
class OverheadResult:
    """Per-stage timings (seconds) of both pipelines, one entry per repeat."""

    sona: dict[str, list[float]]
    implicit: dict[str, list[float]]
    ndcg: dict[str, float]
    config: dict[str, Any]
    k: int
    n_users: int
    n_items: int
    n_train: int
    meta: dict[str, Any] = field(default_factory=dict)

    def medians(self, side: str) -> dict[str, float]:
        """Median seconds per stage (and ``total``) for ``side`` ("sona" or "implicit")."""
        times = self.sona if side == "sona" else self.implicit
        return {stage: float(np.median(v)) for stage, v in times.items()}

    def ratios(self) -> dict[str, float]:
        """SONA median / implicit median per stage (1.0 = no overhead)."""
        s, i = self.medians("sona"), self.medians("implicit")
        return {stage: s[stage] / i[stage] if i[stage] > 0 else float("nan") for stage in s}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: inputs, raw timings, medians and ratios."""
        return {
            "benchmark": "overhead", "model": "als", "k": self.k, "config": self.config,
            "data": {"n_users": self.n_users, "n_items": self.n_items, "n_train": self.n_train},
            "repeats": len(self.sona["total"]),
            "median_s": {"sona": self.medians("sona"), "implicit": self.medians("implicit")},
            "ratio": self.ratios(),
            "ndcg_at_k": self.ndcg,
            "times_s": {"sona": self.sona, "implicit": self.implicit},
            **self.meta,
        }


def run_overhead(train: Interactions, test: Interactions, *, config: ALSConfig | None = None,
                 k: int = 10, repeats: int = 5) -> OverheadResult:
    """Time SONA's ALS pipeline against raw implicit on ``train``/``test``.

    Raises:
        ValueError: ``repeats < 1``, or the two pipelines' nDCG differ (not the same model).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    config = config or ALSConfig()
    user_items = train.matrix("weight")  # the raw loop's input, prepared once, untimed
    sona_times: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    raw_times: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    sona_ndcg = raw_ndcg = float("nan")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for rep in range(repeats + 1):  # repeat 0 is the untimed warm-up
        s_t, sona_ndcg = _time_sona(train, test, config, k)
        r_t, raw_ndcg = _time_implicit(user_items, train, test, config, k)
        if rep == 0:
            continue
        for stage in STAGES:
            sona_times[stage].append(s_t[stage])
            raw_times[stage].append(r_t[stage])
        sona_times["total"].append(sum(s_t.values()))
        raw_times["total"].append(sum(r_t.values()))
        log.info("repeat %d: sona %.3fs, implicit %.3fs", rep, sona_times["total"][-1],
                 raw_times["total"][-1])
    if not np.isclose(sona_ndcg, raw_ndcg, rtol=1e-4, atol=1e-6):
        raise ValueError(f"pipelines disagree: nDCG@{k} sona {sona_ndcg:.6f} vs implicit "
                         f"{raw_ndcg:.6f}; they must fit the same model")
    return OverheadResult(
        sona=sona_times, implicit=raw_times, ndcg={"sona": sona_ndcg, "implicit": raw_ndcg},
        config=to_dict(config), k=k, n_users=train.n_users, n_items=train.n_items,
        n_train=len(train), meta={"environment": _environment(load_before)},
    )


def _time_sona(train: Interactions, test: Interactions, config: ALSConfig,
               k: int) -> tuple[dict[str, float], float]:
    t0 = time.perf_counter()
    model = ALS(config).fit(train)
    t1 = time.perf_counter()
    users = train.users.ids_array
    recs = model.recommend(users, k=k)
    t2 = time.perf_counter()
    value = float(np.nanmean(evaluate(recs, users, test, k=k, metrics=["ndcg"])["ndcg"]))
    t3 = time.perf_counter()
    return {"fit": t1 - t0, "recommend": t2 - t1, "evaluate": t3 - t2}, value


def _time_implicit(user_items: sp.csr_matrix, train: Interactions, test: Interactions,
                   config: ALSConfig, k: int) -> tuple[dict[str, float], float]:
    from implicit.cpu.als import AlternatingLeastSquares

    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=config.n_factors, regularization=config.regularization, alpha=1.0,
            iterations=config.n_iter, use_cg=config.use_cg, use_native=config.use_native,
            num_threads=config.n_threads, random_state=config.seed)
        cui = confidence(user_items, config.alpha, binary=config.binary)
        model.fit(cui, show_progress=False)
    t1 = time.perf_counter()
    userids = np.arange(user_items.shape[0])
    ids, _ = model.recommend(userids, cui[userids], N=k)
    t2 = time.perf_counter()
    value = float(np.nanmean(ndcg_at_k(ids, _relevant_idx(train, test), k)))
    t3 = time.perf_counter()
    return {"fit": t1 - t0, "recommend": t2 - t1, "evaluate": t3 - t2}, value


def _relevant_idx(train: Interactions, test: Interactions) -> list[set[int]]:
    """Each training user's test items as training item indices (unknown items: -2)."""
    frame = test.frame
    users = train.users.numbers(frame["user_id"].to_numpy(), missing="negative")
    items = train.items.numbers(frame["item_id"].to_numpy(), missing="negative")
    # a test item unseen in training can never be recommended but still counts as relevant
    items = np.where(items < 0, -2 - np.arange(len(items)), items)
    relevant: list[set[int]] = [set() for _ in range(train.n_users)]
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        if u >= 0:
            relevant[u].add(i)
    return relevant


def _environment(load_before: float) -> dict[str, Any]:
    """Versions and machine state: timings on a shared machine mean little without them."""
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "python": platform.python_version(), "numpy": np.__version__,
        "implicit": version("implicit"), "scipy": version("scipy"),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "load_avg_1min": {"before": load_before, "after": load_after},
    }
