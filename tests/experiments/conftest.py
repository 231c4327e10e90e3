"""Fixtures for experiment tests: a tiny synthetic interaction file and a config for it."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sona.experiments.spec import ExperimentConfig, from_mapping
from sona.testing.fixtures import power_law_frame


def write_interactions(path: Path) -> Path:
    """Write a small power-law log with the file's own column names (userId, movieId, ...)."""
    frame = power_law_frame(n_users=60, n_items=80, n_interactions=1500, seed=3)
    frame = frame.rename(columns={"user_id": "userId", "item_id": "movieId",
                                  "timestamp": "ts"})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def tiny_config(root: Path, store_template: Path | None = None,
                **changes: Any) -> ExperimentConfig:
    """An experiment over ``root/inter.csv`` tracked into ``root/mlflow`` (absolute paths).

    ``store_template`` (an initialised empty MLflow db) is copied in to skip the migrations.
    """
    data = write_interactions(root / "inter.csv")
    if store_template is not None:
        (root / "mlflow").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store_template, root / "mlflow" / "mlflow.db")
    mapping: dict[str, Any] = {
        "name": "tiny",
        "description": "synthetic smoke experiment",
        "dataset": {"name": "file", "path": str(data),
                    "columns": {"user_id": "userId", "item_id": "movieId", "timestamp": "ts"}},
        "split": {"method": "stratified", "ratio": 0.75, "by": "user", "seed": 42},
        "k": 10,
        "metrics": ["precision", "recall", "ndcg", "map", "coverage"],
        "models": [{"name": "pop", "model": "popularity"},
                   {"name": "ease", "model": "ease", "params": {"l2": 50.0}}],
        "tracking": {"uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
                     "artifact_dir": str(root / "mlflow" / "artifacts")},
        "results_dir": str(root / "results"),
    }
    mapping.update(changes)
    return from_mapping(mapping)


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow sqlite store, created once per session.

    Creating a store runs MLflow's alembic migrations (~8 s on the 2-core CI machine);
    copying this file gives every test its own real, fresh store in milliseconds.
    """
    from sona.experiments.spec import TrackingConfig
    from sona.experiments.tracking import Tracker

    root = tmp_path_factory.mktemp("mlflow-template")
    db = root / "mlflow.db"
    Tracker(TrackingConfig(uri=f"sqlite:///{db}", artifact_dir=str(root / "artifacts")))
    return db


@pytest.fixture(scope="session")
def make_tiny_config(store_template: Path) -> Callable[..., ExperimentConfig]:
    """:func:`tiny_config` with the store template (conftest helpers are not importable)."""
    return functools.partial(tiny_config, store_template=store_template)
