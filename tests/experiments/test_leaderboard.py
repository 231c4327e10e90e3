"""Leaderboard rows, published reference numbers, Markdown/JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sona.experiments.leaderboard import (
    PUBLISHED_SOURCE,
    leaderboard_table,
    published_rows,
    sona_rows,
    sort_metric_of,
    write_leaderboard,
)
from sona.experiments.results import ExperimentResult, ModelResult
from sona.experiments.spec import from_mapping
from sona.experiments.stats import compare

METRICS = ["precision", "ndcg", "map", "coverage"]


def _model(name: str, ndcg: list[float], fit_s: float = 1.0) -> ModelResult:
    values = np.asarray(ndcg)
    return ModelResult(name=name, model="ease", params={}, fit_s=fit_s, recommend_s=0.5,
                       per_query={"precision": values / 2, "ndcg": values,
                                  "map": values / 4, "coverage": np.asarray(0.3)},
                       user_ids=np.arange(len(ndcg)))


def _result(published: bool) -> ExperimentResult:
    cfg = from_mapping({"name": "lb", "metrics": METRICS,
                        "models": [{"name": "a", "model": "ease"},
                                   {"name": "b", "model": "popularity"}]})
    models = [_model("a", [0.2, 0.4, np.nan]), _model("b", [0.5, 0.7, 0.6], fit_s=2.0)]
    rows = sona_rows(models, METRICS, "ndcg")
    comparison = compare(models[1].per_query["ndcg"], models[0].per_query["ndcg"],
                         name_a="b", name_b="a", n_boot=200)
    return ExperimentResult(config=cfg, models=models, rows=rows,
                            published=published_rows(METRICS) if published else [],
                            sort_metric="ndcg", comparison=comparison, parent_run_id="p1",
                            dataset_md5={"ml-100k.inter": "a8a8"}, git_sha="abc")


def test_published_rows_are_the_cited_table() -> None:
    rows = {r.name: r for r in published_rows(["precision", "recall", "ndcg", "map", "mrr"])}
    assert set(rows) == {"BiVAE", "BPR (Cornac)", "LightGCN", "SAR"}
    assert rows["SAR"].metrics == {"precision": 0.330753, "recall": 0.176385,
                                   "ndcg": 0.382461, "map": 0.110591, "mrr": None}
    assert rows["BiVAE"].metrics["ndcg"] == 0.475077
    assert rows["LightGCN"].metrics["ndcg"] == 0.419846
    assert rows["BPR (Cornac)"].metrics["ndcg"] == 0.441997
    assert all(r.source == "published" and r.run_id is None for r in rows.values())
    assert "recommenders-team/recommenders" in PUBLISHED_SOURCE


def test_rows_are_nan_skipping_means_sorted_best_first() -> None:
    rows = _result(False).rows
    assert [r.name for r in rows] == ["b", "a"]
    assert rows[1].metrics["ndcg"] == pytest.approx(0.3)  # NaN user skipped
    assert rows[0].metrics["coverage"] == pytest.approx(0.3)
    nan_model = _model("c", [np.nan])
    ordered = sona_rows([nan_model, _model("d", [0.1])], ["ndcg"], "ndcg")
    assert [r.name for r in ordered] == ["d", "c"]
    assert math.isnan(ordered[1].metrics["ndcg"])


def test_sort_metric() -> None:
    assert sort_metric_of(["recall", "ndcg"]) == "ndcg"
    assert sort_metric_of(["recall", "precision"]) == "recall"


def test_markdown_and_json(tmp_path: Path) -> None:
    result = _result(True)
    files = write_leaderboard(result, tmp_path)
    md = files["md"].read_text()
    assert "| b | sona | 0.3000 | 0.6000 | 0.1500 | 0.3000 | 2.00 | 0.50 |" in md
    assert "| SAR | published | 0.3308 | 0.3825 | 0.1106 | - | - | - |  |" in md
    assert PUBLISHED_SOURCE in md and "Significance" in md
    assert "md5 `ml-100k.inter`: `a8a8`" in md
    payload = json.loads(files["json"].read_text())
    assert payload["rows"][1]["metrics"]["ndcg"] == pytest.approx(0.3)
    assert payload["published"][0]["metrics"]["coverage"] is None
    assert payload["comparison"]["a"] == "b"
    assert payload["config"]["metrics"] == METRICS


def test_json_has_no_nan(tmp_path: Path) -> None:
    result = _result(False)
    result.rows = sona_rows([_model("c", [np.nan])], METRICS, "ndcg")
    files = write_leaderboard(result, tmp_path)
    text = files["json"].read_text()
    assert "NaN" not in text
    assert json.loads(text)["rows"][0]["metrics"]["ndcg"] is None


def test_rich_table_lists_every_row() -> None:
    console = Console(width=200, record=True)
    console.print(leaderboard_table(_result(True)))
    text = console.export_text()
    assert "nDCG@10" in text and "BiVAE" in text and "pub" in text
    assert text.index(" b ") < text.index(" a ") < text.index("BiVAE")
