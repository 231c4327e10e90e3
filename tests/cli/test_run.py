"""``sona run``: the console script end to end (subprocess, real files)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SONA = REPO / ".venv" / "bin" / "sona"


def _sona(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "COLUMNS": "200"}
    return subprocess.run([str(SONA), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _config(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cli-tiny",
        "dataset": {"name": "file", "path": str(data)},
        "metrics": ["precision", "ndcg"],
        "models": [{"name": "pop", "model": "popularity"}],
        "results_dir": str(tmp_path / "results"),
    }))
    return path


def test_malformed_interactions_file_is_a_one_line_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("user_id,item_id,rating\n1,10,4\n2,11,five\n3,12,2\n")
    proc = _sona("run", str(_config(tmp_path, broken)), "--no-track", "-q", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "broken.csv" in lines[0] and "'rating'" in lines[0] and "five" in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_override_is_a_one_line_error(tmp_path: Path) -> None:
    data = tmp_path / "ok.csv"
    data.write_text("user_id,item_id\n1,10\n")
    proc = _sona("run", str(_config(tmp_path, data)), "--set", "models.0.params.l2=5",
                 "--no-track", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown key(s) models[0].params.l2 for "
                                   "PopularityConfig; valid keys: "
                                   + proc.stderr.split("valid keys: ")[1].strip())


def test_run_prints_the_leaderboard_and_writes_results(tmp_path: Path) -> None:
    rows = ["user_id,item_id"] + [f"{u},{i}" for u in range(12) for i in range(u % 5, 15, 2)]
    data = tmp_path / "inter.csv"
    data.write_text("\n".join(rows) + "\n")
    proc = _sona("run", str(_config(tmp_path, data)), "--no-track", "-q", "--set", "k=5",
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nDCG@5" in proc.stdout and "pop" in proc.stdout
    payload = json.loads((tmp_path / "results" / "cli-tiny.json").read_text())
    assert payload["k"] == 5 and payload["rows"][0]["name"] == "pop"
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "mlruns").exists()


def test_help_explains_precedence_with_an_example(tmp_path: Path) -> None:
    proc = _sona("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "dataclass defaults < the YAML file < --set overrides" in text
    assert "sona run experiments/ml100k-baselines.yaml --set" in text
