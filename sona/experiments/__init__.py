"""Offline experiments: YAML spec, runner, MLflow tracking, leaderboard, significance.

Names are loaded lazily so ``import sona.experiments.spec`` (or ``.results``, used by the
Spark engine) does not import MLflow, which only :mod:`sona.experiments.tracking` imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetConfig": "spec", "ExperimentConfig": "spec", "ModelSpec": "spec",
    "TrackingConfig": "spec", "load_experiment": "spec",
    "ExperimentResult": "results", "LeaderboardRow": "results", "ModelResult": "results",
    "run_experiment": "runner",
    "Tracker": "tracking", "RunSummary": "tracking", "git_sha": "provenance",
    "PairedComparison": "stats", "compare": "stats", "paired_bootstrap": "stats",
    "wilcoxon_p": "stats",
    "leaderboard_table": "leaderboard", "write_leaderboard": "leaderboard",
    "run_sweep": "sweep", "SweepResult": "sweep", "SweepSpec": "sweep_spec",
    "ParamSpace": "sweep_spec", "DiversityConfig": "diversity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sona.experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sona.experiments.{_EXPORTS[name]}"), name)
