"""Metric-versus-k curves: how a model's accuracy grows with the list length."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from sona.data.interactions import Interactions
from sona.metrics import evaluate
from sona.models.base import Recommender


def metric_vs_k(
    models: Mapping[str, Recommender[Any]],
    train: Interactions,
    test: Interactions,
    *,
    ks: Iterable[int] = range(1, 21),
    metric: str = "ndcg",
) -> pd.DataFrame:
    """Mean ``metric@k`` of each model for every ``k`` in ``ks``.

    Each model ranks once, at ``max(ks)``, for every test user it knows (training items
    excluded); shorter lists are prefixes of that ranking, so the curves are consistent.

    Args:
        models: display name -> fitted model (trained on ``train``).
        train: the training log (also used for users and training-based metrics).
        test: held-out log; every test item of a user is relevant.
        ks: list lengths, each >= 1.
        metric: one ranking metric name understood by :func:`sona.metrics.evaluate`.

    Returns:
        Long frame with columns ``model``, ``k``, ``value`` (mean over users, NaN-skipping).

    Raises:
        ValueError: empty ``ks`` or a k < 1.
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be non-empty and >= 1, got {ks}")
    test_users = np.asarray(test.users.ids_array)
    users = test_users[train.users.numbers(test_users, missing="negative") >= 0]
    rows = []
    for name, model in models.items():
        recs = model.recommend(users, k=ks[-1])
        for k in ks:
            values = evaluate(recs, users, test, k=k, metrics=[metric], train=train)[metric]
            rows.append({"model": name, "k": k, "value": float(np.nanmean(values))})
    return pd.DataFrame(rows)
