"""A self-contained SONA server on MovieLens 100K for A/B simulations, the notebook and tests.

:func:`start_demo_server` fits two models on ML-100K (v1 ALS, v2 EASE), exports them as
serving bundles (TorchScript exporter and genre content vectors: a few seconds), writes a
serving YAML whose A/B store is a SQLite file in the work folder, creates an admin API key
and starts ``bentoml serve`` on a free 127.0.0.1 port. Variant configs can therefore pin
``{"model_version": "2"}`` to serve EASE to one arm.

It lives in serving, not in :mod:`sona.ab`: it composes export, keys and the server process,
and the A/B package sits below serving (the experiments API imports it), so it never imports
serving back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sona import io
from sona.data.sources import MovieLens, load_ml100k
from sona.db import sqlite_url

if TYPE_CHECKING:
    from sona.models.base import Recommender
    from sona.serving.process import ServerProcess

#: registered model name of the demo bundles
DEMO_MODEL = "sona-ab-demo"


@dataclass
class DemoServer:
    """A running demo server; ``with`` stops it."""

    url: str
    admin_key: str
    db_url: str  # the A/B store
    config_path: Path  # serving YAML (for `sona ab report --config`)
    movielens: MovieLens
    process: ServerProcess  # the running server

    def stop(self) -> None:
        """SIGTERM the server."""
        self.process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def export_demo_models(ml: MovieLens, models_dir: Path) -> list[Path]:
    """Fit ALS (v1) and EASE (v2) on ML-100K and export both bundles under ``models_dir``."""
    from sona.models.als import ALS, ALSConfig
    from sona.models.ease import EASE, EASEConfig
    from sona.pipeline import ContentConfig
    from sona.serving.export_onnx import ExportConfig, export_model

    fast = ExportConfig(exporter="torchscript", content=ContentConfig(source="genres"))
    models: list[Recommender[Any]] = [ALS(ALSConfig(n_factors=32, n_iter=10, n_threads=1, seed=0)),
              EASE(EASEConfig(l2=300.0))]
    paths = []
    for version, model in enumerate(models, start=1):
        target = models_dir / DEMO_MODEL / str(version)
        if not (target / "manifest.json").exists():
            export_model(model.fit(ml.interactions), target, name=DEMO_MODEL, version=version,
                         catalog=ml.catalog, interactions=ml.interactions, config=fast)
        paths.append(target)
    return paths


def start_demo_server(work_dir: str | Path, *, data_dir: str | Path = "datasets",
                      threads: int = 4, reset_store: bool = False) -> DemoServer:
    """Export the demo models (once), write the config and start the server.

    Args:
        work_dir: folder of bundles, databases, config and logs (reused across runs).
        data_dir: datasets folder holding ``ml-100k``.
        threads: request threads of the server.
        reset_store: start with an empty A/B store (earlier experiments removed).

    Raises:
        DataError: ML-100K is not under ``<data_dir>/ml-100k``.
        SonaError: the server did not become ready (its log tail is included).
    """
    from sona.serving.auth import KeyStore
    from sona.serving.process import ServerProcess

    work = Path(work_dir).resolve()
    ml = load_ml100k(Path(data_dir) / "ml-100k")
    export_demo_models(ml, work / "models")
    if reset_store:
        io.remove_tree(work / "store")
    db_url = sqlite_url(work / "store" / "experiments.db")
    config = work / "serving.yaml"
    io.write_yaml(config, {
        "model_name": DEMO_MODEL, "models_dir": str(work / "models"), "version": "1",
        "database": str(work / "sona.db"), "poll_interval_s": 0, "access_log": False,
        # one worker: a short-lived demo server, start-up time matters more than throughput
        "workers": 1,
        "threads": threads, "tracking": {"uri": sqlite_url(work / "mlflow.db"),
                                         "artifact_dir": str(work / "mlartifacts")},
        "experiments": {"url": db_url}})
    admin = KeyStore(sqlite_url(work / "sona.db")).create(["admin"], name="ab-demo")[1]
    process = ServerProcess(config).start()
    return DemoServer(process.url, admin, db_url, config, ml, process)


__all__ = ["DEMO_MODEL", "DemoServer", "export_demo_models", "start_demo_server"]
