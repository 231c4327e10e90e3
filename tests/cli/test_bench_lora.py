"""``sona bench lora`` end to end on ML-100K (subprocess, real files, real MLflow store)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SONA = REPO / ".venv" / "bin" / "sona"
ML100K_DIR = REPO / "datasets" / "ml-100k"


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_lora_prints_tables_writes_json_and_tracks(tmp_path: Path) -> None:
    if not (ML100K_DIR / "ml-100k.inter").exists():
        pytest.skip("MovieLens 100K not fetched; run `sona data fetch`")
    out = tmp_path / "lora.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "COLUMNS": "200",
           "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(SONA), "bench", "lora", "--data", str(ML100K_DIR), "--out", str(out),
         "--max-users", "25", "--epochs", "5", "--no-refit", "--no-stratified",
         "--n-boot", "200", "--segment-by", "gender"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    for word in ("base+segment+user", "95% CI", "directory", "sql", "load ms p50"):
        assert word in proc.stdout
    data = json.loads(out.read_text())
    assert data["protocol"]["users_evaluated"] == 25
    assert data["protocol"]["segments"] == 2
    # rank 4 on 64 factors: 512 floats; the SQL BLOB holds exactly those bytes
    assert data["storage"]["parameters_per_adapter"] == 512
    assert data["storage"]["sql"]["bytes_float32"] == 2048
    assert data["storage"]["sql"]["bytes_float16"] == 1024
    assert data["storage"]["directory"]["bytes_float32"] <= 10 * 1024

    from sona.experiments.spec import TrackingConfig
    from sona.experiments.tracking import Tracker

    tracker = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
                                     artifact_dir=str(tmp_path / "mlflow" / "artifacts")))
    run = tracker.best_run("lora-personalization", "ndcg.base")
    assert run.params["adapter.rank"] == "4" and run.params["adapter.n_steps"] == "10"
    assert run.metrics["ndcg.base"] == pytest.approx(data["ndcg"]["base"])
    assert run.metrics["bytes_fp32.sql"] == 2048
