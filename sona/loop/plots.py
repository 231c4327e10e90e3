"""The closed loop's figure: hit rate before and after retraining, with the paired CI."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sona.experiments.stats import PairedComparison


def plot_before_after(comparisons: Mapping[str, PairedComparison], *,
                      k: int = 10) -> Figure:
    """Left: mean hit rate@k before and after per setting; right: the paired differences.

    Args:
        comparisons: setting label -> ``compare(after, before)`` of per-viewer hit rates
            (``mean_a`` = after, ``mean_b`` = before), e.g. from :func:`compare_hits`.
        k: the list length, for the labels.

    Raises:
        ValueError: no comparison given.
    """
    if not comparisons:
        raise ValueError("nothing to plot: no comparison given")
    labels = list(comparisons)
    rows = [comparisons[name] for name in labels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8),
                                      gridspec_kw={"width_ratios": [1.2, 1.0]})
    y = np.arange(len(rows))
    height = 0.38
    left.barh(y + height / 2, [r.mean_b for r in rows], height, label="before retraining",
              color="#9aa5b1")
    left.barh(y - height / 2, [r.mean_a for r in rows], height, label="after retraining",
              color="#2f6db5")
    for i, r in enumerate(rows):
        left.text(r.mean_b, i + height / 2, f" {r.mean_b:.3f}", va="center", fontsize=8)
        left.text(r.mean_a, i - height / 2, f" {r.mean_a:.3f}", va="center", fontsize=8)
    left.set_yticks(y, labels)
    left.set_ylim(len(rows) - 0.5, -0.5)  # first setting on top
    left.set_xlim(0, 1.35)
    left.set_xlabel(f"hit rate@{k} on hidden tastes (n = {rows[0].n} viewers)")
    left.legend(loc="center right", fontsize=8)
    diffs = np.array([r.mean_diff for r in rows])
    err = np.array([[r.mean_diff - r.ci_low for r in rows], [r.ci_high - r.mean_diff
                                                              for r in rows]])
    right.errorbar(diffs, y, xerr=err, fmt="o", color="#2f6db5", capsize=4)
    right.axvline(0.0, color="black", linewidth=0.8)
    for i, r in enumerate(rows):
        right.annotate(f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
                       (r.mean_diff, i), textcoords="offset points", xytext=(0, 9),
                       ha="center", fontsize=8)
    right.set_yticks(y, [""] * len(rows))
    right.set_ylim(len(rows) - 0.5, -0.8)  # room for the top annotation
    right.set_xlabel(f"after - before ({rows[0].confidence:.0%} paired bootstrap CI)")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle("The loop closes: the champion retrained on served viewing")
    fig.tight_layout()
    plt.close(fig)  # returned, not shown: a notebook displays it once
    return fig


__all__ = ["plot_before_after"]
