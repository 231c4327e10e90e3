import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from sona.data.interactions import Interactions
from sona.metrics import ndcg_at_k
from sona.models.generators import carve_validation
from sona.pipeline.tuning import heldout_contexts, ndcg_of_lists, spread_weights
from sona.ranking.blend import fit_blend_weights, ndcg_from_scores
from sona.ranking.context import Context
from sona.testing.fixtures import random_interactions

MONDAY = 1_704_672_000.0  # 2024-01-08 00:00:00 UTC, a Monday
HOUR, DAY = 3600.0, 86400.0


@seed(7)
@settings(max_examples=80, deadline=None)
@given(st.integers(1, 8), st.integers(3, 20), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_ndcg_of_lists_equals_the_metric(n_users: int, n_items: int, k: int,
                                         rng_seed: int) -> None:
    rng = np.random.default_rng(rng_seed)
    width = int(rng.integers(1, n_items + 1))
    idx = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    idx[rng.random(idx.shape) < 0.2] = -1  # padding never hits
    if width < k:  # the metric wants k columns: pad like a short list
        idx = np.pad(idx, ((0, 0), (0, k - width)), constant_values=-1)
    relevant_sets = [set(rng.choice(n_items, rng.integers(0, n_items), replace=False).tolist())
                     for _ in range(n_users)]
    absent = rng.integers(0, 3, n_users)  # held-out items the model does not know
    rows = [u for u, r in enumerate(relevant_sets) for _ in r]
    cols = [i for r in relevant_sets for i in r]
    relevant = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n_users, n_items))
    n_relevant = np.array([len(r) for r in relevant_sets]) + absent
    ours = ndcg_of_lists(idx, relevant, n_relevant, k)
    # the metric sees the unknown held-out items as ids no list can contain
    truth = [r | {n_items + 100 + j for j in range(a)}
             for r, a in zip(relevant_sets, absent, strict=True)]
    np.testing.assert_allclose(ours, ndcg_at_k(idx, truth, k), atol=1e-12)
    assert np.isnan(ours[n_relevant == 0]).all()


def test_ndcg_of_lists_of_padding_only_is_zero() -> None:
    # regression (found writing these tests): a batch whose lists were all padding raised
    # scipy's "truth value of an array is ambiguous" instead of scoring 0
    relevant = sp.csr_matrix((np.ones(2), ([0, 1], [1, 2])), shape=(3, 4))
    out = ndcg_of_lists(np.full((3, 5), -1), relevant, np.array([1, 1, 0]), 5)
    np.testing.assert_array_equal(out[:2], [0.0, 0.0])
    assert np.isnan(out[2])


def test_heldout_contexts_take_the_median_event() -> None:
    stamps = {1: [MONDAY + 9 * HOUR, MONDAY + DAY + 21 * HOUR, MONDAY + 2 * DAY + 3 * HOUR],
              2: [MONDAY + 5 * DAY + 14 * HOUR]}
    frame = pd.DataFrame([{"user_id": u, "item_id": 10 + j, "rating": 4.0, "timestamp": t}
                          for u, ts in stamps.items() for j, t in enumerate(ts)])
    validation = Interactions.from_frame(frame)
    out = heldout_contexts(validation, np.array([2, 1, 3], dtype=object))
    # user 2: Saturday 14h; user 1: the middle event is Tuesday 21h; user 3 has none
    assert out == [Context(hour=14, weekday=5), Context(hour=21, weekday=1), Context()]
    assert out[2].is_empty


def test_spread_weights_never_costs_more_than_the_tolerance() -> None:
    data = random_interactions(seed=9)
    vs = carve_validation(data, 0.75, seed=7)
    rng = np.random.default_rng(0)
    truth = vs.relevant.toarray()
    seen = vs.fit.matrix("weight")[vs.user_idx].toarray() > 0
    shape = truth.shape
    norms = [0.4 * truth + 0.6 * rng.random(shape),  # informative
             rng.random(shape),                        # noise
             0.4 * truth + 0.6 * rng.random(shape),  # informative, a second opinion
             1.0 - truth]                              # misleading
    norms = [np.where(seen, np.nan, m) for m in norms]
    defined = vs.n_relevant > 0

    def value(w: np.ndarray) -> float:
        mixed = sum(x * m for x, m in zip(w, norms, strict=True) if x > 0)
        return float(np.nanmean(ndcg_from_scores(mixed, vs.relevant, vs.n_relevant,
                                                 10)[defined]))

    weights, best = fit_blend_weights(norms, vs.relevant, vs.n_relevant, k=10, step=0.05)
    assert value(weights) == best
    for tolerance in (0.0, 0.002, 0.05):
        spread = spread_weights(weights, best, norms, vs, 10, [0.2, 0.1, 0.05], tolerance)
        assert spread.sum() == np.float64(weights.sum())
        assert (spread >= 0).all()
        assert value(spread) >= best - tolerance
        assert (spread[weights > 0] > 0).all()  # shares only move to sources left at 0
    # the misleading source stays at 0 under a tight tolerance
    tight = spread_weights(weights, best, norms, vs, 10, [0.2, 0.1, 0.05], 0.002)
    assert weights[3] == 0 and tight[3] == 0
