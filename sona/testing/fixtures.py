"""Synthetic data builders for tests, notebooks and benchmarks (seeded, deterministic)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sona.data.interactions import Interactions

#: offsets keep external ids distinct from indices, so id/index mix-ups fail loudly
USER_OFFSET = 1000
ITEM_OFFSET = 5000


def checkerboard(n: int = 50, *, string_ids: bool = False) -> Interactions:
    """The implicit library's known-answer checkerboard, minus the diagonal.

    User ``i`` likes every item ``j`` with ``j % 2 == i % 2`` except item ``i`` itself, which
    every similar user likes: a collaborative model must rank item ``i`` first for user ``i``.
    """
    rows = [(i, j) for i in range(n) for j in range(i % 2, n, 2) if j != i]
    users = np.array([USER_OFFSET + r[0] for r in rows])
    items = np.array([ITEM_OFFSET + r[1] for r in rows])
    if string_ids:
        users = np.array([f"u{u}" for u in users], dtype=object)
        items = np.array([f"i{i}" for i in items], dtype=object)
    frame = pd.DataFrame({"user_id": users, "item_id": items,
                          "rating": 5.0, "timestamp": np.arange(len(rows), dtype=float)})
    return Interactions.from_frame(frame)


def checkerboard_ids(i: int, *, string_ids: bool = False) -> tuple[object, object]:
    """External (user id, item id) of user ``i`` and item ``i`` in :func:`checkerboard`."""
    if string_ids:
        return f"u{USER_OFFSET + i}", f"i{ITEM_OFFSET + i}"
    return USER_OFFSET + i, ITEM_OFFSET + i


def power_law_frame(
    n_users: int = 200,
    n_items: int = 300,
    n_interactions: int = 4000,
    *,
    seed: int = 0,
    user_exponent: float = 1.0,
    item_exponent: float = 1.1,
) -> pd.DataFrame:
    """Interaction frame with MovieLens-like power-law user activity and item popularity.

    Pairs are sampled without replacement (one row per pair); ratings 1-5 and increasing
    timestamps are drawn too. Every user and item index below the sizes may appear.
    """
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, n_users + 1) ** user_exponent
    pi = 1.0 / np.arange(1, n_items + 1) ** item_exponent
    pu /= pu.sum()
    pi /= pi.sum()
    n_interactions = min(n_interactions, n_users * n_items // 2)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_interactions:
        need = n_interactions - len(pairs)
        us = rng.choice(n_users, size=need * 2, p=pu)
        its = rng.choice(n_items, size=need * 2, p=pi)
        for u, i in zip(us.tolist(), its.tolist(), strict=True):
            pairs.add((u, i))
            if len(pairs) >= n_interactions:
                break
    arr = np.array(sorted(pairs))
    order = rng.permutation(len(arr))
    arr = arr[order]
    return pd.DataFrame({
        "user_id": arr[:, 0] + USER_OFFSET,
        "item_id": arr[:, 1] + ITEM_OFFSET,
        "rating": rng.integers(1, 6, len(arr)).astype(float),
        "timestamp": np.sort(rng.integers(870_000_000, 890_000_000, len(arr))).astype(float),
    })


def random_interactions(n_users: int = 60, n_items: int = 80, n_interactions: int = 900,
                        *, seed: int = 0) -> Interactions:
    """Small power-law :class:`Interactions` for contract tests."""
    return Interactions.from_frame(power_law_frame(n_users, n_items, n_interactions, seed=seed))
