"""``sona sweep``: the console script end to end (subprocess, real files, no tracking)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from sona.testing.fixtures import power_law_frame

REPO = Path(__file__).resolve().parents[2]
SONA = REPO / ".venv" / "bin" / "sona"


def _sona(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "COLUMNS": "200"}
    return subprocess.run([str(SONA), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _config(tmp_path: Path) -> Path:
    data = tmp_path / "inter.csv"
    power_law_frame(n_users=50, n_items=60, n_interactions=1000, seed=1).to_csv(data,
                                                                               index=False)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cli-sweep",
        "dataset": {"name": "file", "path": str(data)},
        "metrics": ["ndcg"],
        "models": [{"name": "ease", "model": "ease"}],
        "sweeps": [{"model": "ease", "trials": 9,
                    "space": {"l2": {"type": "float", "low": 1.0, "high": 100.0}}}],
        "results_dir": str(tmp_path / "results"),
    }))
    return path


def test_sweep_command_runs_and_writes_results(tmp_path: Path) -> None:
    proc = _sona("sweep", str(_config(tmp_path)), "--model", "ease", "--trials", "2",
                 "--no-track", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best of 2 trials" in proc.stdout and "test ndcg@10" in proc.stdout
    payload = json.loads((tmp_path / "results" / "cli-sweep-sweep-ease.json").read_text())
    assert len(payload["trials"]) == 2 and payload["parent_run_id"] is None


def test_unknown_sweep_is_a_one_line_error(tmp_path: Path) -> None:
    proc = _sona("sweep", str(_config(tmp_path)), "--model", "als", "--no-track",
                 cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no sweep for model 'als'")
