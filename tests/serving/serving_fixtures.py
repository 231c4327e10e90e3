"""Serving test helpers: synthetic data, bundle/config builders, tiny HTTP client.

Bundles use the legacy TorchScript exporter and genre content vectors so the session
builds in a few seconds; ``test_export_onnx.py`` covers the dynamo exporter separately.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sona import io
from sona.models.generators import GeneratorSpec
from sona.pipeline import ContentConfig, PipelineConfig
from sona.pipeline.graphs import OnnxConfig
from sona.serving.export_onnx import ExportConfig
from sona.serving.process import ServerProcess

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
              # the ML-100K search engine is built at start-up; its MiniLM query encoder
              # loads on the first search instead of on a warm-up thread (~9 s of CPU)
              "search": {"warm_up": False}}
    config.update(overrides)
    io.write_yaml(path, config)
    return path


def post(url: str, body: Any, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    """POST JSON with plain urllib; returns (status, parsed body)."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        return exc.code, json.loads(payload) if payload else None


def call(method: str, url: str, body: Any = None, key: str | None = None, *,
         raw: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, Any]:
    """One JSON request with plain urllib; returns (status, parsed body)."""
    sent = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        return exc.code, json.loads(payload) if payload else None


def get(url: str) -> tuple[int, Any]:
    """GET with plain urllib; returns (status, body: parsed JSON or text)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text
