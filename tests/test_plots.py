import pandas as pd
import pytest

from sona.plots import plot_metric_vs_k


def test_plot_metric_vs_k_draws_one_line_per_model(tmp_path):
    curves = pd.DataFrame({"model": ["a", "a", "b", "b"], "k": [1, 2, 1, 2],
                           "value": [0.1, 0.2, 0.3, 0.35]})
    fig = plot_metric_vs_k(curves, metric="ndcg")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b"]
    assert list(ax.lines[1].get_ydata()) == [0.3, 0.35]
    assert ax.get_ylabel() == "ndcg@k"
    fig.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_plot_metric_vs_k_names_missing_columns():
    with pytest.raises(ValueError, match="value"):
        plot_metric_vs_k(pd.DataFrame({"model": ["a"], "k": [1]}))
