"""``bentoml build`` of serving/bentofile.yaml works offline and packs the service + sona."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sona.serving.process import REPO_ROOT


@pytest.mark.slow
def test_bentoml_build_offline(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "true",
           # any index access would fail fast: the build must not resolve packages
           "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "UV_OFFLINE": "1"}
    bentoml = Path(sys.executable).with_name("bentoml")
    proc = subprocess.run([str(bentoml), "build", "-f", "serving/bentofile.yaml", "."],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Successfully built Bento(tag="sona:' in proc.stdout + proc.stderr
    (bento,) = [p for p in (tmp_path / "home" / "bentos" / "sona").iterdir()
                if p.name != "latest"]
    src = bento / "src"
    assert (src / "serving" / "service.py").exists()
    assert (src / "sona" / "serving" / "recs_api.py").exists()
    assert not (src / "tests").exists() and not (src / "models").exists()
    schema = (bento / "apis" / "openapi.yaml").read_text()
    for route in ("/api/v1/recommendations", "/api/v1/personalization/score",
                  "/api/v1/profile/update", "/api/v1/lora/train", "/admin/reload"):
        assert route in schema


def test_the_workers_uvicorn_parses_with_httptools_on_uvloop() -> None:
    # BentoML's worker builds uvicorn.Config with http/loop "auto": installed, these two
    # replace h11 and asyncio's loop (issue 12: ~1.7x the RPS of a worker)
    from uvicorn.config import Config

    config = Config(app="sona.bench.ceiling:app")
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    factory = config.get_loop_factory()
    assert factory is not None and factory.__module__.startswith("uvloop")
