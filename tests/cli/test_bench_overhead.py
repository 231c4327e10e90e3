"""``sona bench overhead`` end to end on ML-100K (subprocess, real files)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SONA = REPO / ".venv" / "bin" / "sona"
ML100K_DIR = REPO / "datasets" / "ml-100k"


@pytest.mark.realdata
def test_bench_overhead_prints_table_and_writes_json(tmp_path: Path) -> None:
    if not (ML100K_DIR / "ml-100k.inter").exists():
        pytest.skip("MovieLens 100K not fetched; run `sona data fetch`")
    out = tmp_path / "overhead.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run([str(SONA), "bench", "overhead", "--data", str(ML100K_DIR),
                           "--out", str(out), "--repeats", "1"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    for word in ("fit", "recommend", "evaluate", "total", "ratio"):
        assert word in proc.stdout
    data = json.loads(out.read_text())
    assert data["data"] == {"n_users": 943, "n_items": 1653, "n_train": data["data"]["n_train"]}
    assert 74_000 < data["data"]["n_train"] < 75_000
    assert data["ndcg_at_k"]["sona"] == pytest.approx(data["ndcg_at_k"]["implicit"], rel=1e-6)
    assert data["ratio"]["total"] > 0
