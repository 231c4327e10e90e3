"""Promote the best run to ``champion`` and export registered versions for serving.

:func:`promote_best` picks the best run of an experiment by a metric, registers its model
directory as a new version, moves the ``champion`` alias (the old champion becomes
``previous``) and records why: tags on the model version and a row in the audit log.
:func:`export_version` downloads a registered version and writes its ONNX bundle to
``models/<name>/<version>/``, which the serving process then hot-swaps to.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError
from sona.serving.audit import AuditLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Promotion:
    """What :func:`promote_best` did."""

    name: str
    version: int
    run_id: str
    run_name: str
    metric: str
    value: float
    previous: int | None
    reason: str
    promoted_at: float


@dataclass(frozen=True)
class ExportData:
    """Item metadata and the interaction log a bundle is built from."""

    catalog: Catalog
    interactions: Interactions | None = None
    kg: pd.DataFrame | None = None
    links: pd.DataFrame | None = None


def load_export_data(data_dir: str | Path = "datasets", *,
                     catalog: str | Path | None = None) -> ExportData:
    """ML-100K under ``data_dir/ml-100k`` (catalog, log, KG), or a catalog file.

    Args:
        data_dir: folder of fetched datasets.
        catalog: a CSV/TSV/Parquet catalog (``item_id``, ``title``, ``genres``...) to use
            instead of MovieLens; no interactions then (no time-of-day context).
    """
    from sona import io

    if catalog is not None:
        return ExportData(Catalog.from_frame(io.read_table(catalog), source=catalog))
    from sona.data.sources import load_ml100k

    ml = load_ml100k(Path(data_dir) / "ml-100k")
    return ExportData(ml.catalog, ml.interactions, ml.kg, ml.links)


def promote_best(tracker: Any, experiment: str, metric: str, name: str, *,
                 maximize: bool = True, reason: str | None = None,
                 audit: AuditLog | None = None) -> Promotion:
    """Register the best run of ``experiment`` by ``metric`` and make it the champion.

    Args:
        tracker: a :class:`sona.experiments.tracking.Tracker`.
        experiment: MLflow experiment name (the experiment YAML's ``name``).
        metric: run metric, e.g. ``ndcg_at_10``.
        name: registered model name.
        maximize: higher is better.
        reason: why (default: the metric value and run).
        audit: where to write the audit record (optional).

    Raises:
        ConfigError: no such experiment, or no run with ``metric``.
    """
    best = tracker.best_run(experiment, metric, maximize=maximize)
    value = float(best.metrics[metric])
    version = tracker.register_model(best.run_id, name)
    previous = tracker.promote(name, version)
    why = reason or (f"best {metric}={value:.4f} in experiment {experiment!r} "
                     f"(run {best.run_name or best.run_id})")
    now = time.time()
    tracker.set_version_tags(name, version, {
        "sona.promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "sona.promotion_reason": why, "sona.promotion_metric": metric,
        "sona.promotion_value": f"{value:.6f}", "sona.previous_champion": previous or "",
        "sona.experiment": experiment})
    if audit is not None:
        audit.record("model_promoted", "model", f"{name}/{version}", details={
            "experiment": experiment, "run_id": best.run_id, "metric": metric,
            "value": value, "previous": previous, "reason": why})
    log.info("promoted %s v%d (%s)", name, version, why)
    return Promotion(name, int(version), best.run_id, best.run_name, metric, value, previous,
                     why, now)


def export_version(tracker: Any, name: str, version: int | str, models_dir: str | Path,
                   data: ExportData, config: Any = None) -> Any:
    """Download registered ``name`` v``version`` and export it to ``models_dir/name/version``.

    Args:
        tracker: a :class:`sona.experiments.tracking.Tracker`.
        config: an :class:`~sona.serving.export_onnx.ExportConfig` (default settings if None).

    Returns:
        The :class:`~sona.serving.export_onnx.ExportResult`.
    """
    from sona.models.base import Recommender
    from sona.serving.export_onnx import ExportConfig, export_model

    info = tracker.model_version_info(name, version)
    with tempfile.TemporaryDirectory(prefix="sona-export-") as tmp:
        local = tracker.download_model_version(name, version, tmp)
        model_dir = local if (local / "config.yaml").exists() else local / "model"
        if not (model_dir / "config.yaml").exists():
            raise ConfigError(f"{name} v{version} has no SONA model directory at {info['source']}")
        model: Recommender[Any] = Recommender.load(model_dir)
    return export_model(model, Path(models_dir) / name / str(version), name=name,
                        version=version, catalog=data.catalog, interactions=data.interactions,
                        kg=data.kg, links=data.links,
                        config=config if config is not None else ExportConfig(),
                        run_id=info["run_id"])


__all__ = ["ExportData", "Promotion", "export_version", "load_export_data", "promote_best"]
