"""Tie-aware top-k parity (issue 10): float noise at a tie passes, a real swap fails."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sona.ranking.topk import topk
from sona.serving.parity import ParityReport, compare_scores, topk_agreement

ATOL = 1e-5


def _row(n_items: int = 30, seed: int = 0) -> np.ndarray:
    """Distinct scores, well apart (gaps >= 1e-2), so only planted ties are ties."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(n_items) * 0.01 + 0.5)[None, :].astype(np.float64)


def test_noise_at_a_tie_across_the_kth_boundary_passes() -> None:
    ref = _row()
    order = np.argsort(-ref[0])
    tenth, eleventh = order[9], order[10]
    ref[0, eleventh] = ref[0, tenth]  # exact tie between rank 10 and rank 11
    top_ref, _ = topk(ref, 10)
    outside = tenth if tenth not in top_ref[0] else eleventh  # topk broke the tie by index
    ours = ref.copy()
    ours[0, outside] += 1e-7  # noise: ours swaps the tied item left out into the top-10
    report = compare_scores("scorer", ours, ref, atol=ATOL)
    assert report.max_abs_diff == pytest.approx(1e-7)
    assert report.top10_exact == 0.0  # the lists really differ...
    assert report.top10_identical == 1.0 and report.ok(ATOL)  # ...only inside the tie


def test_noise_reordering_a_tie_inside_the_list_passes() -> None:
    ref = _row()
    order = np.argsort(-ref[0])
    ref[0, order[4]] = ref[0, order[3]] - 2e-7  # ranks 4 and 5 within float noise
    ours = ref.copy()
    ours[0, order[4]] += 4e-7
    report = compare_scores("scorer", ours, ref, atol=ATOL)
    assert report.top10_exact == 0.0 and report.top10_identical == 1.0


def test_a_real_swap_between_rank_3_and_4_fails() -> None:
    ref = _row()
    order = np.argsort(-ref[0])
    ref[0, order[3]] = ref[0, order[2]] - 1e-3  # rank 4 is 1e-3 below rank 3
    ours = ref.copy()
    ours[0, order[2]], ours[0, order[3]] = ref[0, order[3]], ref[0, order[2]]
    report = compare_scores("scorer", ours, ref, atol=ATOL)
    assert report.top10_identical == 0.0 and report.top10_exact == 0.0
    assert not report.ok(ATOL)


def test_identical_rows_pass_and_report_exact_agreement() -> None:
    ref = np.vstack([_row(seed=s)[0] for s in range(5)])
    report = compare_scores("scorer", ref.copy(), ref, atol=ATOL)
    assert report == ParityReport("scorer", 5, 0.0, 1.0, 1.0, ATOL)
    assert report.to_dict()["top10_exact"] == 1.0


def test_an_item_clearly_above_the_boundary_missing_fails() -> None:
    ref = _row()
    top, _ = topk(ref, 10)
    ours = top.copy()
    ours[0, 0] = np.argsort(-ref[0])[15]  # best item replaced by the 16th: clear miss
    assert not topk_agreement(ours, ref, ATOL)[0]
    ours = top.copy()
    ours[0, 9] = ours[0, 0]  # an item listed twice
    assert not topk_agreement(ours, ref, ATOL)[0]
    assert topk_agreement(top, ref, ATOL)[0]


def test_excluded_items_and_padding_count_as_unrankable() -> None:
    ref = np.array([[3.0, -np.inf, 2.0, np.nan, 1.0, -np.inf]])
    assert topk_agreement(np.array([[0, 2, 4, 1, 3]]), ref, ATOL)[0]  # tail: any unrankable
    assert topk_agreement(np.array([[0, 2, 4, -1, -1]]), ref, ATOL)[0]  # topk's padding
    assert not topk_agreement(np.array([[0, 2, 1, 4, 3]]), ref, ATOL)[0]  # rankable after one
    assert not topk_agreement(np.array([[0, 2, 1, 5, 3]]), ref, ATOL)[0]  # a rankable missing


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="atol must be >= 0"):
        topk_agreement(np.zeros((1, 2), np.int64), np.zeros((1, 3)), -1.0)
    with pytest.raises(ValueError, match="lists of 4 items over 3 items"):
        topk_agreement(np.zeros((1, 4), np.int64), np.zeros((1, 3)), ATOL)
    with pytest.raises(ValueError, match="differ in shape"):
        compare_scores("scorer", np.zeros((2, 3)), np.zeros((2, 4)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_items=st.integers(10, 200),
       ties=st.booleans(), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_noise_far_below_atol_never_fails(seed: int, n_items: int, ties: bool,
                                          scale: float) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(20, n_items)) * scale
    if ties:  # coarse values: many exact ties, as popularity counts or clamped scores have
        ref = np.round(ref / scale * 4) * scale / 4
    ours = ref + rng.uniform(-1, 1, ref.shape) * ATOL * 1e-2
    report = compare_scores("scorer", ours, ref, atol=ATOL)
    assert report.max_abs_diff <= ATOL * 1e-2
    assert report.top10_identical == 1.0, report
