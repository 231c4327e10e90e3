"""Plots people would rather look at than read (matplotlib, headless-safe).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``show``; save it
with ``fig.savefig(path)`` or let a notebook display it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from io import BytesIO

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


def plot_accuracy_vs_diversity(points: Sequence[Mapping[str, float]], *, metric: str = "ndcg",
                               k: int = 10, title: str = "") -> Figure:
    """Accuracy (``metric@k``) against intra-list diversity, one marker per MMR λ.

    Args:
        points: mappings with keys ``"lambda"``, ``metric`` and ``"diversity"`` (as from
            :func:`sona.experiments.diversity.accuracy_diversity_curve`).
        metric: the accuracy key of ``points``.
        k: cut-off shown on the axis labels.
        title: figure title (default names the trade-off).

    Raises:
        ValueError: no points, or a point without the needed keys.
    """
    if not points:
        raise ValueError("plot_accuracy_vs_diversity needs at least one point")
    missing = sorted({"lambda", metric, "diversity"} - set(points[0]))
    if missing:
        raise ValueError(f"points lack key(s) {missing}; have {sorted(points[0])}")
    xs = [p["diversity"] for p in points]
    ys = [p[metric] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(xs, ys, marker="o", markersize=4)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(f"λ={p['lambda']:.1f}", (x, y), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.set_xlabel(f"intra-list diversity@{k} (mean pairwise cosine distance)")
    ax.set_ylabel(f"{metric}@{k}")
    ax.set_title(title or "Accuracy vs diversity (MMR re-ranking)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, *, dpi: int = 120) -> bytes:
    """PNG bytes of ``fig`` (write them with :func:`sona.io.write_bytes_atomic`); closes it."""
    buffer = BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()
