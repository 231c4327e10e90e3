"""Rating-prediction errors: RMSE and MAE over aligned (prediction, truth) pairs.

Reference: Herlocker et al., "Evaluating collaborative filtering recommender systems",
ACM TOIS 22(1), 2004, section 3.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _pairs(predicted: ArrayLike, truth: ArrayLike) -> tuple[NDArray[np.float64],
                                                           NDArray[np.float64]]:
    pred = np.asarray(predicted, dtype=np.float64).ravel()
    true = np.asarray(truth, dtype=np.float64).ravel()
    if np.shape(predicted) != np.shape(truth):
        raise ValueError(f"predicted and truth differ in shape: {np.shape(predicted)} vs "
                         f"{np.shape(truth)}")
    if pred.size == 0:
        raise ValueError("no (prediction, truth) pairs to compare")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(true))):
        raise ValueError("predicted and truth must be finite (found NaN or inf)")
    return pred, true


def rmse(predicted: ArrayLike, truth: ArrayLike) -> float:
    """Root mean squared error, ``sqrt(mean((p - t)^2))``.

    Raises:
        ValueError: shapes differ, no pairs, or a NaN/inf value.
    """
    pred, true = _pairs(predicted, truth)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(predicted: ArrayLike, truth: ArrayLike) -> float:
    """Mean absolute error, ``mean(|p - t|)``.

    Raises:
        ValueError: shapes differ, no pairs, or a NaN/inf value.
    """
    pred, true = _pairs(predicted, truth)
    return float(np.mean(np.abs(pred - true)))
