"""Scaling benchmark plumbing on a tiny size (implicit engine only: no JVM in the fast suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from sona.bench.scaling import ScalingConfig, prepare_split, run_scaling
from sona.cli.bench_scaling import _ints, scaling_table


def test_size_parser() -> None:
    assert _ints("100K, 1M,10m,2500", "sizes") == (100_000, 1_000_000, 10_000_000, 2500)
    with pytest.raises(typer.BadParameter, match="cannot read 'lots'"):
        _ints("lots", "sizes")


def test_prepare_split_is_cached_and_seeded(tmp_path: Path) -> None:
    cfg = ScalingConfig(work_dir=str(tmp_path))
    first = prepare_split(5_000, cfg)
    assert first["n_train"] + first["n_test"] == 5_000
    assert 0.15 < first["n_test"] / 5_000 < 0.25
    again = prepare_split(5_000, cfg)  # read back from the cache
    assert again == first


@pytest.mark.slow
def test_implicit_step_reports_phases_memory_and_metrics(tmp_path: Path) -> None:
    cfg = ScalingConfig(sizes=(5_000,), engines=("implicit",), n_iter=3,
                        work_dir=str(tmp_path), timeout_s=120)
    report = run_scaling(cfg)
    (row,) = report["rows"]
    assert row["status"] == "ok" and row["engine"] == "implicit"
    assert set(row["phases"]) == {"load_s", "fit_s", "topk_s", "metrics_s"}
    assert row["python_peak_mib"] > 50  # a real Python process with numpy loaded
    assert 0.0 < row["metrics"]["ndcg"] <= 1.0
    assert report["machine"]["cpu_count"] >= 1
    assert scaling_table(report).row_count == 1


def test_timeout_is_recorded(tmp_path: Path) -> None:
    cfg = ScalingConfig(sizes=(5_000,), engines=("implicit",), work_dir=str(tmp_path),
                        timeout_s=0.5)
    (row,) = run_scaling(cfg)["rows"]
    assert row["status"] == "timeout"
    assert row["wall_s"] < 30


def test_unknown_engine(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        run_scaling(ScalingConfig(engines=("dask",), work_dir=str(tmp_path)))
