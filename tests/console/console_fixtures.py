"""Browser-test helpers: the system Chromium, the skip-or-fail rule, the served pipeline."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sona.models.generators import GeneratorSpec
from sona.pipeline import ContentConfig, PipelineConfig
from sona.pipeline.graphs import OnnxConfig
from sona.serving.export_onnx import ExportConfig
from sona.serving.process import ServerProcess

REQUIRE_ENV = "SONA_REQUIRE_BROWSER"
MODEL_NAME = "console-recs"
#: flags for a sandboxed, offline machine (no Google services, no QUIC, root-safe)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
CONSOLE_PIPELINE = PipelineConfig(
    collaborative=GeneratorSpec("collaborative", "ease", {"l2": 50.0}), graph=None,
    content=ContentConfig(source="genres"),
    # a context weight large enough that mood and company visibly reorder the list
    weights={"collaborative": 0.5, "content_based": 0.2, "context": 0.3}, mmr_lambda=0.9,
    side_source=None, onnx=OnnxConfig(exporter="torchscript"))
FAST_EXPORT = ExportConfig(exporter="torchscript", content=ContentConfig(source="genres"))


def chromium_path() -> str | None:
    """The system Chromium: ``$SONA_CHROMIUM``, else ``chromium`` on the PATH, else None."""
    configured = os.environ.get("SONA_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; fail instead when CI requires the browser tests to run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: browser tests must run)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Console:
    url: str
    admin_key: str
    server: ServerProcess
    work: Path
