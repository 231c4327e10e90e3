"""Bundles and server configs for the serving benchmarks.

The benchmarks run against an exported bundle: the champion's when given, else a demo
bundle fitted here on MovieLens 100K (ALS by default), so ``sona bench onnx`` and
``sona bench load`` work on a fresh checkout after ``sona data fetch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sona import io


def demo_bundle(out_dir: str | Path, *, data_dir: str | Path = "datasets", model: str = "als",
                content: str = "text", exporter: str = "torchscript",
                name: str = "sona-demo", version: str = "1") -> Path:
    """Fit ``model`` (a registry name) on all of ML-100K and export it; returns the bundle.

    Reuses an existing pipeline bundle at ``out_dir/name/version``; one exported before the
    pipeline (no ``pipeline/``) is exported again.
    """
    from sona.config import from_dict
    from sona.models.registry import build_model
    from sona.serving.export_onnx import ExportConfig, export_model
    from sona.serving.promotion import load_export_data

    target = Path(out_dir) / name / version
    if (target / "manifest.json").exists() and (target / "pipeline").exists():
        return target
    data = load_export_data(data_dir)
    if data.interactions is None:
        raise ValueError("the demo bundle needs MovieLens 100K interactions")
    fitted = build_model(model, {}).fit(data.interactions)
    config = from_dict(ExportConfig, {"content": {"source": content}, "exporter": exporter})
    export_model(fitted, target, name=name, version=version, catalog=data.catalog,
                 interactions=data.interactions, kg=data.kg, links=data.links, config=config)
    return target


def bundle_config(bundle: str | Path, workdir: str | Path, *, threads: int = 4,
                  onnx_threads: int = 1, access_log: bool = False,
                  workers: int | None = None) -> Path:
    """Write a serving YAML pinned to ``bundle`` (own database in ``workdir``); returns it."""
    root = Path(bundle).resolve()
    config: dict[str, Any] = {
        "model_name": root.parent.name, "models_dir": str(root.parent.parent),
        "version": root.name, "database": str(Path(workdir).resolve() / "sona.db"),
        "poll_interval_s": 0, "threads": threads, "onnx_threads": onnx_threads,
        "access_log": access_log,
        # wrk sends no credentials: the anonymous per-IP bucket gets a limit no load run
        # reaches, so the limiter still runs on every request (its cost is measured) but
        # never answers 429 (issue 13)
        "rate_limits": {"tiers": {"anonymous": [{"requests": 1e12, "per_s": 60}]}},
    }
    if workers is not None:  # else the ServingConfig default
        config["workers"] = workers
    path = Path(workdir) / "serving.yaml"
    io.write_yaml(path, config)
    return path


__all__ = ["bundle_config", "demo_bundle"]
