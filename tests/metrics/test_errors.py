"""RMSE and MAE against Microsoft Recommenders' known values."""

from __future__ import annotations

import numpy as np
import pytest

from sona.metrics import mae, rmse

# Microsoft Recommenders test_python_evaluation.py: merged (truth, prediction) pairs of its
# rating fixtures, rmse 7.254309 and mae 6.375.
TRUTH = np.array([3, 3, 5, 5, 3, 3, 2, 1])
PREDICTED = np.array([14, 12, 7, 8, 13, 6, 11, 5])


def test_known_values() -> None:
    assert rmse(PREDICTED, TRUTH) == pytest.approx(7.254309, abs=1e-6)
    assert mae(PREDICTED, TRUTH) == pytest.approx(6.375)
    assert rmse(TRUTH, TRUTH) == 0.0 and mae(TRUTH, TRUTH) == 0.0


def test_rmse_at_least_mae() -> None:
    rng = np.random.default_rng(3)
    pred, true = rng.normal(size=100), rng.normal(size=100)
    assert rmse(pred, true) >= mae(pred, true) > 0


@pytest.mark.parametrize(
    ("pred", "true", "message"),
    [([1.0, 2.0], [1.0], "differ in shape"), ([], [], "no .* pairs"),
     ([1.0, np.nan], [1.0, 2.0], "finite")],
)
def test_bad_input(pred: list[float], true: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rmse(pred, true)
    with pytest.raises(ValueError, match=message):
        mae(pred, true)
