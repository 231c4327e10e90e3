"""Log an A/B report to MLflow, linked both ways to the model each variant served.

The run goes to MLflow experiment ``ab/<experiment name>`` and carries: the variant
weights and configs as params; per-variant counts and rates and per-treatment uplift,
p-values, CUPED factor, P(beat control), expected loss and the always-valid p-value as
metrics; the SRM verdict as a tag; the report files (JSON, PNGs, HTML) as artifacts. For
each variant it resolves the registered model version it served (its ``model_version``,
its ``model_alias``, else the serving alias, "champion" by default) and tags the run with
``variant.<name>.model`` and ``variant.<name>.model_run_id`` (the training run); the
model version in turn gets a tag ``ab.<experiment>.<variant>`` pointing back at this run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sona.ab.analysis import ABReport
from sona.errors import ConfigError
from sona.experiments.spec import TrackingConfig
from sona.experiments.tracking import Tracker

log = logging.getLogger(__name__)


def report_metrics(report: ABReport) -> dict[str, float]:
    """The report's numbers as flat MLflow metric names (None values left out)."""
    out: dict[str, float | None] = {"srm_p_value": report.srm.p_value,
                                    "srm_chi2": report.srm.chi2}
    for v in report.variants:
        out.update({f"{v.name}.users": v.users, f"{v.name}.exposures": v.exposures,
                    f"{v.name}.conversion_rate": v.conversion_rate, f"{v.name}.mean": v.mean,
                    f"{v.name}.events_per_exposure": v.events_per_exposure})
    for c in report.comparisons:
        p = c.variant
        if c.welch is not None:
            out.update({f"{p}.uplift": c.welch.relative_uplift, f"{p}.p_value": c.welch.p_value,
                        f"{p}.diff": c.welch.diff})
        if c.cuped is not None:
            out.update({f"{p}.cuped_uplift": c.cuped.test.relative_uplift,
                        f"{p}.cuped_p_value": c.cuped.test.p_value,
                        f"{p}.cuped_variance_factor": c.cuped.variance_reduction})
        if c.proportion is not None:
            out[f"{p}.conversion_p_value"] = c.proportion.p_value
        out.update({f"{p}.p_beat_control": c.bayes.p_beat_control,
                    f"{p}.expected_loss": c.bayes.expected_loss_treatment})
        if c.sequential is not None:
            out[f"{p}.always_valid_p"] = c.sequential.always_valid_p
    return {k: float(v) for k, v in out.items() if v is not None and float(v) == float(v)}


def variant_models(report: ABReport, tracker: Tracker, model_name: str,
                   default_alias: str = "champion") -> dict[str, dict[str, Any]]:
    """Registered version (and its training run) behind each variant, where resolvable."""
    found: dict[str, dict[str, Any]] = {}
    for name, config in report.models.items():
        alias = config.get("model_alias") or (None if config.get("model_version") else
                                              default_alias)
        version: Any = config.get("model_version")
        entry: dict[str, Any] = {"name": model_name, "version": version, "alias": alias}
        try:
            if version is None and alias is not None:
                version = tracker.get_alias_version(model_name, alias)
            if version is not None:
                info = tracker.model_version_info(model_name, version)
                entry.update(version=str(info["version"]), run_id=info["run_id"])
        except ConfigError as exc:
            log.warning("variant %s: model %s not in the registry (%s)", name, model_name, exc)
        found[name] = entry
    return found


def log_report(report: ABReport, tracking: TrackingConfig, *, model_name: str,
               files: Mapping[str, Path] | None = None, default_alias: str = "champion"
               ) -> tuple[str, str]:
    """Log ``report`` (and its files) to MLflow; returns ``(mlflow experiment id, run id)``."""
    tracker = Tracker(tracking)
    name = str(report.experiment["name"])
    mlflow_experiment = f"ab/{name}"
    models = variant_models(report, tracker, model_name, default_alias)
    tags: dict[str, Any] = {"sona.ab.experiment_id": report.experiment["id"],
                            "sona.ab.metric": report.metric,
                            "srm_flagged": str(report.srm.flagged).lower()}
    for variant, entry in models.items():
        tags[f"variant.{variant}.model"] = (f"{entry['name']}/{entry['version']}"
                                            if entry.get("version") else
                                            f"{entry['name']}@{entry['alias']}")
        if entry.get("run_id"):
            tags[f"variant.{variant}.model_run_id"] = entry["run_id"]
    params: dict[str, Any] = {"experiment": name, "metric": report.metric,
                              "alpha": report.alpha,
                              "traffic_allocation": report.experiment["traffic_allocation"]}
    for v in report.variants:
        params[f"variant.{v.name}.weight"] = v.weight
        params[f"variant.{v.name}.config"] = json.dumps(report.models.get(v.name, {}),
                                                        sort_keys=True)
    with tracker.run(mlflow_experiment, f"report-{report.metric}", tags=tags) as run:
        run.log_params(params)
        run.log_metrics(report_metrics(report))
        for path in (files or {}).values():
            run.log_artifact(path, "report")
        run_id = run.run_id
    for variant, entry in models.items():
        if entry.get("run_id"):
            tracker.set_version_tags(model_name, entry["version"],
                                     {f"ab.{name}.{variant}": run_id})
    return tracker.experiment_id(mlflow_experiment), run_id


__all__ = ["log_report", "report_metrics", "variant_models"]
