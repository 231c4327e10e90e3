"""Serving test helpers: synthetic data, bundle/config builders, tiny HTTP client.

Bundles use the legacy TorchScript exporter and genre content vectors so the session
builds in a few seconds; ``test_export_onnx.py`` covers the dynamo exporter separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sona import io
from sona.models.generators import GeneratorSpec
from sona.pipeline import ContentConfig, PipelineConfig
from sona.pipeline.graphs import OnnxConfig
from sona.serving.export_onnx import ExportConfig
from sona.serving.process import ServerProcess
from sona.testing.http import call, get, post  # noqa: F401  (re-exported to the tests)

MODEL_NAME = "test-recs"
FAST_EXPORT = ExportConfig(exporter="torchscript", content=ContentConfig(source="genres"))
#: the hybrid bundle (v3): fixed weights and λ, so fitting skips validation tuning
HYBRID = PipelineConfig(
    collaborative=GeneratorSpec("collaborative", "ease", {"l2": 10.0}), graph=None,
    content=ContentConfig(source="genres"),
    weights={"collaborative": 0.6, "content_based": 0.25, "context": 0.15}, mmr_lambda=0.9,
    lora_boost=0.3,  # the SPEC multiplier (the pipeline's default is off), so adapters act
    side_source=None, onnx=OnnxConfig(exporter="torchscript"))


@dataclass(frozen=True)
class Bundles:
    models_dir: Path
    v1: Path  # EASE served as the pipeline's only source (Pipeline.around)
    v2: Path  # ALS, likewise
    v3: Path  # a fitted hybrid Pipeline: EASE + genre content + context, MMR λ 0.9, LoRA 0.3


@dataclass(frozen=True)
class RunningServer:
    server: ServerProcess
    url: str
    admin_key: str
    write_key: str
    read_key: str
    config: Path


def write_config(path: Path, models_dir: Path, **overrides: Any) -> Path:
    """A serving YAML for bundles under ``models_dir`` (pinned to v1 unless overridden)."""
    config = {"model_name": MODEL_NAME, "models_dir": str(models_dir), "version": "1",
              "database": str(path.parent / "sona.db"), "poll_interval_s": 0,
              "access_log": False, "threads": 4,
              # one worker: a second one doubles each test server's start-up CPU; the
              # multi-worker behaviour has its own server test (test_workers_server.py)
              "workers": 1,
              # the ML-100K search engine is built at start-up; its MiniLM query encoder
              # loads on the first search instead of on a warm-up thread (~9 s of CPU)
              "search": {"warm_up": False}}
    config.update(overrides)
    io.write_yaml(path, config)
    return path

