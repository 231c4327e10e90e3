"""ANN benchmark on a small catalogue: every row present, exact is the recall reference."""

from __future__ import annotations

import numpy as np
import pytest

from sona.bench.ann import AnnConfig, item_vectors, recall_at_k, run_ann
from sona.cli.bench_scaling import ann_table


def test_vectors_are_seeded_float32() -> None:
    cfg = AnnConfig(n_items=1_000, dim=8, n_clusters=10)
    a, b = item_vectors(cfg), item_vectors(cfg)
    assert a.dtype == np.float32 and a.shape == (1_000, 8)
    np.testing.assert_array_equal(a, b)


def test_recall_at_k() -> None:
    assert recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])) == 0.75


@pytest.mark.slow
def test_small_run_has_every_row() -> None:
    cfg = AnnConfig(n_items=3_000, dim=16, n_clusters=30, n_queries=50, latency_queries=5,
                    nlist=32, nprobes=(2, 32), ef_searches=(16, 64))
    report = run_ann(cfg)
    rows = report["rows"]
    assert len(rows) == 2 * (1 + 2 + 2)  # tasks x (exact + ivf sweep + hnsw sweep)
    assert {(r["task"], r["kind"]) for r in rows} >= {("similar", "hnsw"), ("candidates", "ivf")}
    for r in rows:
        assert 0.0 <= r["recall_at_k"] <= 1.0 and r["p50_ms"] > 0
    # probing every IVF cell is exhaustive: recall 1 against the exact index
    full = [r for r in rows if r["kind"] == "ivf" and r["param"] == {"nprobe": 32}]
    assert all(r["recall_at_k"] == pytest.approx(1.0) for r in full)
    assert ann_table(report).row_count == len(rows)


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        run_ann(AnnConfig(n_items=100, tasks=("rerank",)))
