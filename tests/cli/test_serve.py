"""``sona keys``, ``sona promote``/``sona export`` (real stores) and ``sona serve`` (a real
server, stopped with SIGTERM) through the CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from sona import io
from sona.cli import _register, app
from sona.db import sqlite_url
from sona.errors import ConfigError
from sona.serving.auth import KeyStore
from sona.serving.identity import Authenticator
from sona.serving.process import REPO_ROOT
from sona.serving.tokens import AuthConfig, TokenService
from sona.serving.users import UserStore
from sona.shared import SharedState
from sona.testing.serving import make_serving_data

runner = CliRunner()
_register()


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "serving.yaml"
    io.write_yaml(path, {
        "model_name": "cli-recs", "models_dir": str(tmp_path / "models"),
        "database": str(tmp_path / "sona.db"),
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "artifact_dir": str(tmp_path / "artifacts")}})
    return path


def test_keys_create_prints_once_and_stores_the_hash(tmp_path: Path) -> None:
    config = _config(tmp_path)
    res = runner.invoke(app, ["keys", "create", "--scope", "admin", "--config", str(config)])
    assert res.exit_code == 0, res.output
    key = res.stdout.strip().splitlines()[0]
    assert re.fullmatch(r"sk_[A-Za-z0-9]{32}", key)
    store = KeyStore(sqlite_url(tmp_path / "sona.db"))
    found = store.verify(key)
    assert found is not None and found.scopes == ("admin",)
    listed = runner.invoke(app, ["keys", "list", "--config", str(config)])
    assert listed.exit_code == 0 and key[:7] in listed.stdout and key not in listed.stdout
    # a running server's worker caches the verified key; the revocation reaches it at once
    shared = SharedState.for_database(tmp_path / "sona.db")
    users = UserStore(sqlite_url(tmp_path / "sona.db"))
    worker = Authenticator(store, TokenService(sqlite_url(tmp_path / "sona.db"), users,
                                               AuthConfig(), shared=shared),
                           key_cache_s=3600.0, shared=shared)
    assert worker.verify(key) is not None
    revoked = runner.invoke(app, ["keys", "revoke", str(found.key_id), "--config", str(config)])
    assert revoked.exit_code == 0 and store.verify(key) is None
    assert worker.verify(key) is None
    shared.close()
    missing = runner.invoke(app, ["keys", "revoke", "99", "--config", str(config)])
    # main() prints SonaErrors on one line and exits 2; CliRunner shows the exception
    assert isinstance(missing.exception, ConfigError)
    assert str(missing.exception) == "no API key with id 99"


def test_keys_create_rejects_unknown_scope(tmp_path: Path) -> None:
    res = runner.invoke(app, ["keys", "create", "--scope", "root", "--config",
                              str(_config(tmp_path))])
    assert res.exit_code == 2 and "valid scopes" in res.output


@pytest.mark.slow
def test_promote_then_export(tmp_path: Path) -> None:
    from sona.experiments.spec import TrackingConfig
    from sona.experiments.tracking import Tracker
    from sona.models.ease import EASE, EASEConfig
    from sona.models.popularity import Popularity

    config = _config(tmp_path)
    served = make_serving_data()
    catalog = served.catalog.frame.assign(genres=lambda f: f["genres"].map("|".join))
    catalog_file = tmp_path / "catalog.csv"
    pd.DataFrame(catalog).to_csv(catalog_file, index=False)
    log_file = tmp_path / "interactions.csv"  # the log the models are fitted on
    served.data.frame[["user_id", "item_id", "rating", "timestamp", "weight"]].to_csv(
        log_file, index=False)
    tracker = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                     artifact_dir=str(tmp_path / "artifacts")))
    for name, model, ndcg in [("pop", Popularity(), 0.1),
                              ("ease", EASE(EASEConfig(l2=10.0)), 0.4)]:
        with tracker.run("cli-exp", name) as run:
            run.log_metrics({"ndcg_at_10": ndcg})
            run.log_model(model.fit(served.data))
    args = ["--config", str(config), "--content", "genres", "--exporter", "torchscript",
            "--catalog", str(catalog_file), "--interactions", str(log_file)]
    res = runner.invoke(app, ["promote", "--experiment", "cli-exp", *args])
    assert res.exit_code == 0, res.output
    assert "champion: cli-recs v1" in res.stdout and "ndcg_at_10=0.4000" in res.stdout
    manifest = io.read_json(tmp_path / "models" / "cli-recs" / "1" / "manifest.json")
    assert manifest["model_class"].endswith("EASE") and manifest["run_id"]
    res = runner.invoke(app, ["export", *args])  # the champion again, re-exported
    assert res.exit_code == 0, res.output
    assert "top-10 identical 100%" in res.stdout and "exported cli-recs v1" in res.stdout
    # EASE is served as the pipeline's only source, without MMR
    assert ("pipeline: weights collaborative=1, content_based=0, graph_based=0, context=0; "
            "MMR λ 1") in res.stdout
    bad = runner.invoke(app, ["promote", "--experiment", "nope", "--no-export",
                              "--config", str(config)])
    assert isinstance(bad.exception, ConfigError)
    assert "no MLflow experiment named 'nope'" in str(bad.exception)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def test_sigterm_stops_the_whole_server_tree(tmp_path: Path) -> None:
    # issue 13: `sona serve` exec'd bentoml, whose worker outlived SIGTERM (re-parented to
    # init, /ready still 200); now the signal reaches every process of the tree
    from sona.models.ease import EASE, EASEConfig
    from sona.pipeline import ContentConfig
    from sona.serving.export_onnx import ExportConfig, export_model
    from sona.serving.process import free_port

    served = make_serving_data()
    export_model(EASE(EASEConfig(l2=10.0)).fit(served.data), tmp_path / "models" / "r" / "1",
                 name="r", version=1, catalog=served.catalog, interactions=served.data,
                 config=ExportConfig(exporter="torchscript",
                                     content=ContentConfig(source="genres")))
    config = tmp_path / "serving.yaml"
    io.write_yaml(config, {"model_name": "r", "models_dir": str(tmp_path / "models"),
                           "version": "1", "database": str(tmp_path / "sona.db"),
                           "poll_interval_s": 0, "access_log": False, "workers": 1,
                           # the server runs in tmp_path: name the shipped dataset, or search
                           # (a required component of /ready) has nothing to build from
                           "search": {"warm_up": False, "encoder": "tfidf",
                                      "dataset": str(REPO_ROOT / "datasets" / "ml-100k")}})
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true", "HF_HUB_OFFLINE": "1"}
    sona = Path(sys.executable).with_name("sona")
    proc = subprocess.Popen([str(sona), "serve", "--config", str(config), "--port", str(port),
                             "--grace", "20"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while not _answers(f"http://127.0.0.1:{port}/ready"):
            assert proc.poll() is None, f"sona serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, "server not ready after 180 s"
            time.sleep(0.2)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert tree  # bentoml serve and its worker(s)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert [p.pid for p in alive] == []
        assert not _answers(f"http://127.0.0.1:{port}/ready")
    finally:
        for leftover in [p for p in tree if p.is_running()]:
            leftover.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
