"""Recommendations built from ragged lists (HTTP responses)."""

from __future__ import annotations

import numpy as np
import pytest

from sona.types import PAD_ID, PAD_STR, Recommendations


def test_from_lists_pads_and_ranks() -> None:
    recs = Recommendations.from_lists([[5, 7, 9], [4]], k=3)
    np.testing.assert_array_equal(recs.ids, [[5, 7, 9], [4, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(recs.scores[0], [3.0, 2.0, 1.0])
    assert recs.row(1) == [(4, 3.0)]
    assert recs.valid.sum() == 4


def test_from_lists_keeps_given_scores_and_string_ids() -> None:
    recs = Recommendations.from_lists([["a", "b"]], [[0.9, 0.4]], string_ids=True)
    assert recs.ids.tolist() == [["a", "b"]] and recs.scores.tolist() == [[0.9, 0.4]]
    padded = Recommendations.from_lists([["a"]], k=2, string_ids=True)
    assert padded.ids.tolist() == [["a", PAD_STR]]


def test_from_lists_rejects_missing_scores() -> None:
    with pytest.raises(ValueError, match="row 0: 2 ids but 1 scores"):
        Recommendations.from_lists([[1, 2]], [[0.5]])
