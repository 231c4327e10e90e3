"""Real-data helpers for the sync and MCP tests: an ML-100K bundle and a running server.

The bundle is EASE fitted on all of MovieLens 100K, served as the only source of a pipeline
(``Pipeline.around``), exported with the fast test settings of ``tests/serving`` (TorchScript
graphs, genre content vectors): a few seconds, and every id the tools see is a real film.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sona import io
from sona.data.sources import MovieLens
from sona.db import sqlite_url
from sona.models.ease import EASE, EASEConfig
from sona.pipeline import ContentConfig
from sona.serving.auth import KeyStore
from sona.serving.export_onnx import ExportConfig, export_model
from sona.serving.process import ServerProcess
from sona.testing.http import call

MODEL_NAME = "ml100k-ease"
FAST_EXPORT = ExportConfig(exporter="torchscript", content=ContentConfig(source="genres"))


def export_ml100k(ml100k: MovieLens, models_dir: Path) -> Path:
    """EASE on ML-100K exported as version 1 under ``models_dir``; returns the bundle path."""
    model = EASE(EASEConfig(l2=200.0)).fit(ml100k.interactions)
    return export_model(model, models_dir / MODEL_NAME / "1", name=MODEL_NAME, version=1,
                        catalog=ml100k.catalog, interactions=ml100k.interactions,
                        config=FAST_EXPORT).path


def write_config(path: Path, models_dir: Path, **overrides: Any) -> Path:
    """A serving YAML pinned to the ML-100K bundle (search: ML-100K, TF-IDF when asked)."""
    config: dict[str, Any] = {
        "model_name": MODEL_NAME, "models_dir": str(models_dir), "version": "1",
        "database": str(path.parent / "sona.db"), "poll_interval_s": 0, "access_log": False,
        "workers": 1, "threads": 4, "search": {"warm_up": False}}
    config.update(overrides)
    io.write_yaml(path, config)
    return path


@dataclass
class Live:
    """A running server with a write and a read key."""

    proc: ServerProcess
    url: str
    write: str
    read: str


def start(config: Path) -> Live:
    """Start ``bentoml serve`` on ``config`` (keys are created in its database first)."""
    database = Path(io.read_yaml(config)["database"])
    keys = KeyStore(sqlite_url(database))
    write, read = keys.create(["write"])[1], keys.create(["read"])[1]
    proc = ServerProcess(config).start()
    return Live(proc, proc.url, write, read)


__all__ = ["FAST_EXPORT", "MODEL_NAME", "Live", "call", "export_ml100k", "start",
           "write_config"]
