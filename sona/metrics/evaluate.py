"""Evaluate a batch of recommendations against a held-out test log.

The protocol is Microsoft Recommenders': each user's ground truth is every item the user
has in ``test`` (binary relevance), lists are cut at ``k``, and per-user values are kept
(:func:`summarize` averages them, ignoring users without test items).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sona.data.interactions import Interactions
from sona.metrics._lists import check_k
from sona.metrics.coverage import catalog_coverage, novelty, personalization
from sona.metrics.ranking import (
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from sona.types import Recommendations

_Ranking = Callable[[Recommendations, list[set[Any]], int], NDArray[np.float64]]

RANKING_METRICS: dict[str, _Ranking] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": lambda r, rel, k: map_at_k(r, rel, k, normalize="relevant"),
    "map_min_k": lambda r, rel, k: map_at_k(r, rel, k, normalize="min_k"),
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
}
#: metrics that need the training log
TRAIN_METRICS = ("novelty", "coverage")
METRIC_NAMES: tuple[str, ...] = (*RANKING_METRICS, "novelty", "coverage", "personalization")


def _ground_truth(user_ids: NDArray[Any], test: Interactions) -> list[set[Any]]:
    """Each user's set of test item ids (empty for users absent from ``test``)."""
    user_idx = test.users.numbers(user_ids, missing="negative")
    frame_users = test.frame["user_idx"].to_numpy()
    order = np.argsort(frame_users, kind="stable")
    items = test.frame["item_id"].to_numpy()[order]
    counts = np.bincount(frame_users, minlength=test.n_users)
    ends = np.cumsum(counts)
    starts = ends - counts
    return [set(items[starts[u]:ends[u]].tolist()) if u >= 0 else set() for u in user_idx]


def _check_id_kinds(recs: Recommendations, test: Interactions) -> None:
    kind = recs.ids.dtype.kind
    if (kind in "iu" and not test.items.is_integer) or (kind in "US" and test.items.is_integer):
        raise ValueError(f"recommended item ids ({recs.ids.dtype}) and test item ids "
                         f"({'int' if test.items.is_integer else 'str'}) are of different kinds")


def evaluate(
    recs: Recommendations,
    user_ids: ArrayLike,
    test: Interactions,
    *,
    k: int,
    metrics: Sequence[str],
    train: Interactions | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Compute ``metrics`` at ``k`` for ``recs`` (one row per user in ``user_ids``).

    Args:
        recs: top lists for ``user_ids``, at least ``k`` columns (external item ids).
        user_ids: ``(n_users,)`` external user ids, aligned with the rows of ``recs``.
        test: held-out log; a user's relevant items are all of their test items.
        k: cut-off.
        metrics: names from :data:`METRIC_NAMES`: ranking metrics ``precision``,
            ``recall``, ``ndcg`` (binary), ``map`` (normalised by ``|R|``), ``map_min_k``
            (by ``min(k, |R|)``), ``mrr``, ``hit_rate``; ``novelty`` (per user,
            popularity = distinct training users per item); ``coverage`` (distinct
            recommended items / training items) and ``personalization`` (scalars).
        train: the training log, needed by ``novelty`` and ``coverage``.

    Returns:
        ``{name: values}`` in the order asked: ``(n_users,)`` float arrays (NaN for a user
        without test items, or for novelty an empty list) and 0-d arrays for the scalars.

    Raises:
        ValueError: unknown metric names (the message lists the valid ones), no metrics,
            misaligned ``user_ids``, too few columns, a training-based metric without
            ``train``, or item ids of another kind than ``test``'s.
    """
    if not isinstance(recs, Recommendations):
        raise TypeError(f"recs must be Recommendations, got {type(recs).__name__}")
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {list(METRIC_NAMES)}")
    if not names:
        raise ValueError(f"no metrics requested; valid: {list(METRIC_NAMES)}")
    needs_train = [m for m in names if m in TRAIN_METRICS]
    if needs_train and train is None:
        raise ValueError(f"metric(s) {needs_train} need the training log: pass train=")
    k = check_k(k)
    if recs.k < k:
        raise ValueError(f"recs has {recs.k} columns, fewer than k={k}")
    users = np.asarray(user_ids)
    if users.ndim != 1 or len(users) != len(recs):
        raise ValueError(f"user_ids must be 1-D with one id per recs row ({len(recs)}), "
                         f"got shape {users.shape}")
    _check_id_kinds(recs, test)
    top = Recommendations(recs.ids[:, :k], recs.scores[:, :k])

    relevant = _ground_truth(users, test) if any(m in RANKING_METRICS for m in names) else []
    out: dict[str, NDArray[np.float64]] = {}
    for name in names:
        if name in RANKING_METRICS:
            out[name] = RANKING_METRICS[name](top, relevant, k)
        elif name == "novelty":
            assert train is not None
            popularity = train.frame.groupby("item_id", sort=False)["user_id"].nunique()
            out[name] = novelty(top, dict(zip(popularity.index.tolist(),
                                              popularity.to_numpy(np.float64), strict=True)),
                                train.n_users)
        elif name == "coverage":
            assert train is not None
            out[name] = np.asarray(catalog_coverage(top, train.n_items), dtype=np.float64)
        else:
            out[name] = np.asarray(personalization(top), dtype=np.float64)
    return out


def summarize(per_query: Mapping[str, ArrayLike]) -> dict[str, float]:
    """Mean of each metric over queries, ignoring NaN (undefined) entries.

    A 0-d entry is returned as is; an all-NaN or empty array gives NaN (no warning).
    """
    summary: dict[str, float] = {}
    for name, values in per_query.items():
        arr = np.asarray(values, dtype=np.float64).ravel()
        defined = arr[~np.isnan(arr)]
        summary[name] = float(defined.mean()) if defined.size else float("nan")
    return summary
