"""Promote the best exportable run to ``champion``, publishing its bundle first.

:func:`promote_best` walks the runs of an experiment by a metric, best first. It registers
the run's model directory as a new version and, given an :class:`ExportTarget`, writes the
ONNX bundle to ``models/<name>/<version>/`` *before* anything else moves: only once the
bundle is published does the ``champion`` alias move (the old champion becomes
``previous``), the version get its promotion tags and the audit log its row. So the alias
never names a version without a bundle, and a server started at any moment finds one
(issue 10, item 5). A run whose model cannot be exported
(:class:`~sona.models.export.NotExportableError`) is skipped for the next best one; any other
export failure leaves the alias where it was, tags the registered version
``export_status=failed`` and raises :class:`PromotionError`.

:func:`export_version` downloads a registered version and writes its ONNX bundle; ``sona
export`` uses it to re-export, and the serving process hot-swaps to whatever the alias names.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError, SonaError
from sona.models.export import NotExportableError
from sona.serving.audit import AuditLog

if TYPE_CHECKING:
    from sona.experiments.tracking import RunSummary, Tracker
    from sona.serving.export_onnx import ExportConfig, ExportResult

log = logging.getLogger(__name__)

#: version tag saying whether the version's bundle was published ("exported"), could not be
#: built for this model family ("not_exportable") or failed ("failed"); the error is in
#: ``EXPORT_ERROR_TAG``
EXPORT_STATUS_TAG = "export_status"
EXPORT_ERROR_TAG = "export_error"
#: MLflow caps a model-version tag value; reasons are cut to this many characters
_MAX_REASON = 1000


class PromotionError(SonaError):
    """Exporting the chosen run failed, so the champion alias was not moved.

    The message is one line naming the run, the model, the registered version and the
    reason; the CLI prints it and exits 2.
    """

    def __init__(self, *, name: str, version: int, run: str, model: str, reason: str,
                 champion: int | None) -> None:
        self.name = name
        self.version = version
        self.run = run
        self.model = model
        self.reason = reason
        self.champion = champion
        kept = f"champion stays v{champion}" if champion is not None else "no champion set"
        super().__init__(f"promotion failed: run {run} (model {model}) could not be exported "
                         f"as {name} v{version}: {reason}; {kept}")


@dataclass(frozen=True, slots=True)
class SkippedRun:
    """A run better by the metric than the promoted one whose model cannot be exported."""

    run_id: str
    run_name: str
    model: str
    version: int  # the registered version, tagged export_status=not_exportable
    reason: str

    def describe(self) -> str:
        """``skipping run X (model M): reason``, as printed by ``sona promote``."""
        return f"skipping run {self.run_name or self.run_id} (model {self.model}): {self.reason}"


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
    bundle: Path | None = None  # the published bundle; None when promoted without export
    skipped: tuple[SkippedRun, ...] = ()  # better runs that could not be exported


@dataclass(frozen=True)
class ExportData:
    """Item metadata and the interaction log a bundle is built from."""

    catalog: Catalog
    interactions: Interactions | None = None
    kg: pd.DataFrame | None = None
    links: pd.DataFrame | None = None


@dataclass(frozen=True)
class ExportTarget:
    """Where :func:`promote_best` publishes the bundle before it moves the alias."""

    models_dir: Path  # bundles go to models_dir/<name>/<version>/
    data: ExportData
    config: ExportConfig | None = field(default=None)  # default ExportConfig() if None

def load_export_data(data_dir: str | Path = "datasets", *,
                     catalog: str | Path | None = None,
                     interactions: str | Path | None = None) -> ExportData:
    """ML-100K under ``data_dir/ml-100k`` (catalog, log, KG), or a catalog file.

    Args:
        data_dir: folder of fetched datasets.
        catalog: a CSV/TSV/Parquet catalog (``item_id``, ``title``, ``genres``...) to use
            instead of MovieLens.
        interactions: with ``catalog``, the CSV/TSV/Parquet log (``user_id``, ``item_id``,
            optional ``timestamp``, ``rating``, ``weight``) the models were fitted on; a plain
            model cannot be exported without it (a pipeline run carries its own).
    """
    from sona import io

    if interactions is not None and catalog is None:
        raise ConfigError("an interactions file goes with a catalog file; without one the "
                          "ML-100K log is used")
    if catalog is not None:
        log_data = None if interactions is None else Interactions.from_frame(
            io.read_table(interactions), source=interactions)
        return ExportData(Catalog.from_frame(io.read_table(catalog), source=catalog), log_data)
    from sona.data.sources import load_ml100k

    ml = load_ml100k(Path(data_dir) / "ml-100k")
    return ExportData(ml.catalog, ml.interactions, ml.kg, ml.links)


def promote_best(tracker: Tracker, experiment: str, metric: str, name: str, *,
                 maximize: bool = True, reason: str | None = None,
                 audit: AuditLog | None = None, export: ExportTarget | None = None,
                 model: str | None = None) -> Promotion:
    """Make the best exportable run of ``experiment`` by ``metric`` the champion.

    Runs are tried best first. Each tried run is registered as a new version of ``name``;
    with ``export`` its bundle is then written and published, and only after that does the
    ``champion`` alias move (old champion -> ``previous``), the version get its
    ``sona.promotion_*`` tags and ``export_status=exported``, and ``audit`` get its
    ``model_promoted`` row. A run whose model raises ``NotExportableError`` is tagged
    ``export_status=not_exportable``, logged as skipped and the next run is tried.

    Without ``export`` the alias moves right after registering, as for a bundle published
    by another step: servers answer 503 until ``export_version`` writes it.

    Args:
        tracker: the MLflow tracking store and registry.
        experiment: MLflow experiment name (the experiment YAML's ``name``).
        metric: run metric, e.g. ``ndcg_at_10``.
        name: registered model name.
        maximize: higher is better.
        reason: why (default: the metric value and run).
        audit: where to write the audit record (optional).
        export: where to publish the bundle before moving the alias (recommended).
        model: only runs of this model (the experiment YAML's ``model``, e.g. "pipeline").

    Returns:
        What was promoted, the bundle path and the runs skipped on the way.

    Raises:
        ConfigError: no such experiment, no run with ``metric``, a run without a model
            artifact, or no run that can be exported.
        PromotionError: the export of the chosen run failed; the alias did not move and
            the version is tagged ``export_status=failed`` with ``export_error``.
    """
    runs = _ranked_runs(tracker, experiment, metric, maximize=maximize)
    if model is not None:
        runs = [r for r in runs if _model_label(r) == model]
        if not runs:
            raise ConfigError(f"experiment {experiment!r} has no run of model {model!r} with "
                              f"metric {metric!r}")
    skipped: list[SkippedRun] = []
    for run in runs:
        version = tracker.register_model(run.run_id, name)
        if export is None:
            return _move_alias(tracker, run, version, experiment, metric, name, reason, audit,
                               bundle=None, skipped=skipped)
        try:
            result = export_version(tracker, name, version, export.models_dir, export.data,
                                    export.config)
        except Exception as exc:  # any failure must leave the alias where it was
            why = _one_line(exc)
            if isinstance(exc, NotExportableError):
                tracker.set_version_tags(name, version, {
                    EXPORT_STATUS_TAG: "not_exportable", EXPORT_ERROR_TAG: why})
                skip = SkippedRun(run.run_id, run.run_name, _model_label(run), version, why)
                log.warning("%s", skip.describe())
                skipped.append(skip)
                continue
            _record_failure(tracker, run, version, experiment, name, why, audit)
            # a SonaError already says what is wrong; anything else keeps its traceback
            log.warning("export of %s v%d failed", name, version,
                        exc_info=not isinstance(exc, SonaError))
            raise PromotionError(name=name, version=version,
                                 run=run.run_name or run.run_id, model=_model_label(run),
                                 reason=why,
                                 champion=tracker.get_alias_version(name, "champion")) from exc
        return _move_alias(tracker, run, version, experiment, metric, name, reason, audit,
                           bundle=result.path, skipped=skipped)
    raise ConfigError(f"no run of experiment {experiment!r} with metric {metric!r} can be "
                      "exported: " + "; ".join(s.describe() for s in skipped))


def _move_alias(tracker: Tracker, run: RunSummary, version: int, experiment: str, metric: str,
                name: str, reason: str | None, audit: AuditLog | None, *,
                bundle: Path | None, skipped: list[SkippedRun]) -> Promotion:
    """The commit step: alias, tags and audit row, once the bundle (if any) is published."""
    value = float(run.metrics[metric])
    previous = tracker.promote(name, version)
    why = reason or (f"best {metric}={value:.4f} in experiment {experiment!r} "
                     f"(run {run.run_name or run.run_id})")
    if skipped:
        why += "; skipped better runs that cannot be exported: " + ", ".join(
            f"{s.run_name or s.run_id} ({s.model})" for s in skipped)
    now = time.time()
    tags = {
        "sona.promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "sona.promotion_reason": why, "sona.promotion_metric": metric,
        "sona.promotion_value": f"{value:.6f}", "sona.previous_champion": previous or "",
        "sona.experiment": experiment}
    if bundle is not None:
        tags[EXPORT_STATUS_TAG] = "exported"
    tracker.set_version_tags(name, version, tags)
    if audit is not None:
        audit.record("model_promoted", "model", f"{name}/{version}", details={
            "experiment": experiment, "run_id": run.run_id, "metric": metric,
            "value": value, "previous": previous, "reason": why,
            "bundle": str(bundle) if bundle is not None else None,
            "skipped": [s.run_id for s in skipped]})
    log.info("promoted %s v%d (%s)", name, version, why)
    return Promotion(name, int(version), run.run_id, run.run_name, metric, value, previous,
                     why, now, bundle, tuple(skipped))


def _record_failure(tracker: Tracker, run: RunSummary, version: int, experiment: str,
                    name: str, why: str, audit: AuditLog | None) -> None:
    tracker.set_version_tags(name, version, {
        EXPORT_STATUS_TAG: "failed", EXPORT_ERROR_TAG: why, "sona.experiment": experiment})
    if audit is not None:
        audit.record("model_promotion_failed", "model", f"{name}/{version}", details={
            "experiment": experiment, "run_id": run.run_id, "error": why})


def _ranked_runs(tracker: Tracker, experiment: str, metric: str, *,
                 maximize: bool) -> list[RunSummary]:
    """Every run of ``experiment`` that logged ``metric``, best first (ties: MLflow order).

    Raises:
        ConfigError: no such experiment, or no run logged ``metric``.
    """
    # Tracker.best_run returns one run; the rest are read through the tracker's own client
    # (mlflow itself is still imported only by sona.experiments.tracking)
    from sona.experiments.tracking import RunSummary

    best = tracker.best_run(experiment, metric, maximize=maximize)  # raises the precise errors
    exp = tracker.client.get_experiment_by_name(experiment)
    if exp is None:  # deleted between the two queries
        raise ConfigError(f"no MLflow experiment named {experiment!r} at {tracker.uri}")
    order = "DESC" if maximize else "ASC"
    found = tracker.client.search_runs([exp.experiment_id], filter_string="",
                                       order_by=[f"metrics.`{metric}` {order}"],
                                       max_results=1000)
    scored = [r for r in found if metric in r.data.metrics]
    scored.sort(key=lambda r: r.data.metrics[metric], reverse=maximize)  # stable
    runs = [RunSummary(r.info.run_id, r.info.run_name or "", dict(r.data.metrics),
                       dict(r.data.params), dict(r.data.tags)) for r in scored]
    # best_run's pick first, so a tie resolves the same way in both
    return [best] + [r for r in runs if r.run_id != best.run_id]


def _model_label(run: RunSummary) -> str:
    """The model name the experiment YAML used (``sona.model`` tag or ``model`` param)."""
    return run.tags.get("sona.model") or run.params.get("model") or "unrecorded"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, SonaError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


def export_version(tracker: Tracker, name: str, version: int | str, models_dir: str | Path,
                   data: ExportData, config: ExportConfig | None = None) -> ExportResult:
    """Download registered ``name`` v``version`` and export it to ``models_dir/name/version``.

    The bundle is written to a temporary folder and renamed into place, so the folder
    either holds a whole bundle or does not exist.

    Args:
        tracker: the MLflow registry holding the version.
        config: export settings (default settings if None).

    Returns:
        Where the bundle went and its parity checks.

    Raises:
        ConfigError: no such version, or it holds no SONA model directory.
        NotExportableError: the model's family has no ONNX export.
        DataError: a graph failed its parity check.
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


__all__ = [
    "EXPORT_ERROR_TAG", "EXPORT_STATUS_TAG", "ExportData", "ExportTarget", "Promotion",
    "PromotionError", "SkippedRun", "export_version", "load_export_data", "promote_best",
]
