"""A/B experiments: persistent repository, sticky assignment, analysis, off-policy evaluation.

Public names load lazily (PEP 562): ``import sona.ab`` stays cheap, and only
:mod:`sona.ab.report` pulls MLflow (through :mod:`sona.experiments.tracking`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "bucket": "assignment", "buckets": "assignment", "check_weights": "assignment",
    "choose_variant": "assignment", "choose_variants": "assignment",
    "variant_ranges": "assignment",
    "DuplicateNameError": "records", "EventResult": "records", "Experiment": "records",
    "ExposedItem": "records", "OutcomeEvent": "records", "StateError": "records",
    "STATUSES": "records", "TRANSITIONS": "records", "Variant": "records",
    "VariantConfig": "records", "VariantSpec": "records",
    "DB_URL_ENV": "repository", "ExperimentRepository": "repository",
    "database_url": "repository",
    "migrate": "migrations",
    "record_events": "events",
    "count_outcomes": "queries", "exposure_item_frame": "queries",
    "metrics_summary": "queries", "outcome_frame": "queries", "user_frame": "queries",
    "BayesResult": "stats", "CupedResult": "stats", "MeanTest": "stats",
    "ProportionTest": "stats", "SRMResult": "stats", "SequentialResult": "stats",
    "beta_binomial": "stats", "cuped": "stats", "msprt": "stats",
    "power_two_sample": "stats", "sample_size_two_sample": "stats", "srm_test": "stats",
    "two_proportion_ztest": "stats", "welch_ttest": "stats",
    "ABReport": "analysis", "Comparison": "analysis", "VariantSummary": "analysis",
    "analyze": "analysis", "analyze_frames": "analysis",
    "CoecModel": "ope", "OPEEstimate": "ope", "doubly_robust": "ope",
    "direct_method": "ope", "evaluate_policy": "ope", "explore_list": "ope", "ips": "ope",
    "snips": "ope",
    "report_figures": "plots", "write_report": "plots",
    "log_report": "report",
    "SyntheticUsers": "users",
    "SimulationConfig": "simulate", "SimulationResult": "simulate", "simulate": "simulate",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sona.ab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sona.ab.{module}"), name)


__all__ = sorted(_EXPORTS)
