"""Plots people would rather look at than read (matplotlib, headless-safe).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``show``; save it
with ``fig.savefig(path)`` or let a notebook display it.
"""

from __future__ import annotations

# matplotlib picks a headless backend by itself when there is no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def plot_metric_vs_k(curves: pd.DataFrame, *, metric: str = "ndcg") -> Figure:
    """Line plot of ``metric@k`` against ``k``, one line per model.

    Args:
        curves: frame with columns ``model``, ``k``, ``value`` (as from
            :func:`sona.experiments.curves.metric_vs_k`).
        metric: name used in the axis label.

    Raises:
        ValueError: a required column is missing.
    """
    missing = {"model", "k", "value"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves lack column(s) {sorted(missing)}")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, group in curves.groupby("model", sort=False):
        group = group.sort_values("k")
        ax.plot(group["k"], group["value"], marker="o", markersize=3, label=str(name))
    ax.set_xlabel("k (list length)")
    ax.set_ylabel(f"{metric}@k")
    ax.set_title(f"{metric}@k by model")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
