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


def test_accuracy_vs_diversity_plot_and_png():
    from sona.plots import figure_png, plot_accuracy_vs_diversity

    points = [{"lambda": 1.0, "ndcg": 0.49, "diversity": 0.70},
              {"lambda": 0.5, "ndcg": 0.45, "diversity": 0.80}]
    fig = plot_accuracy_vs_diversity(points, k=10)
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0.70, 0.80]
    assert list(ax.lines[0].get_ydata()) == [0.49, 0.45]
    assert ax.get_ylabel() == "ndcg@10"
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    with pytest.raises(ValueError, match="diversity"):
        plot_accuracy_vs_diversity([{"lambda": 1.0, "ndcg": 0.5}])
