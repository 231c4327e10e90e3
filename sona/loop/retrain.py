"""Server side of the closed loop: champion, servers, export -> run -> promote -> hot swap.

:func:`start_loop` trains the first champion with the closed-loop experiment YAML on
ML-100K alone (the same model and settings the retrain uses, so before and after differ
only by the served events in the training data), promotes it through a temporary MLflow
registry into a temporary models folder, and starts two real servers that follow the
``champion`` alias of that registry:

* ``live``: the product server the viewers use (playback, event log, live profiles);
* ``replica``: a second server on the same registry and bundles with empty databases. It
  never sees a viewer's event, so its lists show what the served *model* knows about the
  viewers (see :mod:`sona.loop.viewers` for why that is measured separately).

:func:`retrain` is what an operator runs (``sona events export --with-ml100k``, ``sona run
experiments/ml100k-closed-loop.yaml``, ``sona promote``) as function calls: the live
server's event log merged with ML-100K, the experiment trained on it, the best pipeline run
exported and promoted, then ``POST /admin/reload`` on the live server (the replica polls
the alias) and both waited for until they answer with the new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sona import io
from sona.ab.simulate import Client
from sona.data.sources import MovieLens, load_ml100k
from sona.db import sqlite_url
from sona.experiments.spec import ExperimentConfig, TrackingConfig, load_experiment
from sona.loop.viewers import wait_for_version

if TYPE_CHECKING:
    from sona.events.export import ExportResult
    from sona.experiments.results import ExperimentResult
    from sona.serving.process import ServerProcess
    from sona.serving.promotion import Promotion

#: the experiment both champions are trained with
LOOP_EXPERIMENT = Path("experiments/ml100k-closed-loop.yaml")
#: registered model name of the loop's champions
LOOP_MODEL = "sona-closed-loop"
#: the run metric promotion ranks by
PROMOTION_METRIC = "ndcg_at_10"


def loop_experiment(work: Path, *, path: str | Path = LOOP_EXPERIMENT,
                    dataset: str | Path | None = None, data_dir: str | Path = "datasets",
                    suffix: str = "") -> ExperimentConfig:
    """The closed-loop experiment with its MLflow store and results under ``work``.

    Args:
        work: the loop's folder.
        path: the experiment YAML.
        dataset: the interaction file to train on; None: ML-100K alone.
        data_dir: folder holding ml-100k/.
        suffix: appended to the experiment name (the first champion's runs stay apart
            from the retrain's, so promotion never compares runs on different data).
    """
    base = load_experiment(path)
    tracking = loop_tracking(work)
    overrides = [f"name={base.name}{suffix}", f"tracking.uri={tracking.uri}",
                 f"tracking.artifact_dir={tracking.artifact_dir}",
                 f"results_dir={work / 'results'}", f"dataset.data_dir={data_dir}"]
    overrides += [f"dataset.path={dataset}"] if dataset is not None else \
        ["dataset.name=ml-100k", "dataset.path=null"]
    return load_experiment(path, overrides)


def loop_tracking(work: Path) -> TrackingConfig:
    """The loop's MLflow store: a SQLite file and an artifact folder under ``work``."""
    return TrackingConfig(uri=sqlite_url(work / "mlflow.db"),
                          artifact_dir=str(work / "mlartifacts"))


def train_and_promote(config: ExperimentConfig, models_dir: Path, ml: MovieLens, *,
                      reason: str) -> tuple[ExperimentResult, Promotion]:
    """``sona run`` then ``sona promote --model pipeline`` on ``config``'s experiment."""
    from sona.experiments.runner import run_experiment
    from sona.experiments.tracking import Tracker
    from sona.pipeline import ContentConfig
    from sona.serving.export_onnx import ExportConfig
    from sona.serving.promotion import ExportData, ExportTarget, promote_best

    result = run_experiment(config, progress=False)
    # a pipeline run keeps the graphs it was evaluated with; this config only matters for
    # a plain model served around a pipeline
    fast = ExportConfig(exporter="torchscript", content=ContentConfig(source="genres"))
    target = ExportTarget(models_dir, ExportData(ml.catalog, ml.interactions, ml.kg, ml.links),
                          fast)
    done = promote_best(Tracker(config.tracking), config.name, PROMOTION_METRIC, LOOP_MODEL,
                        model="pipeline", reason=reason, export=target)
    return result, done


@dataclass
class LoopServers:
    """The loop's folder, registry, data and its two running servers; ``with`` stops them."""

    work: Path
    data_dir: Path
    ml: MovieLens
    admin_key: str  # of the live server
    replica_key: str  # of the replica (each server has its own key store)
    live: ServerProcess
    replica: ServerProcess
    first: Promotion  # the champion both servers started on

    @property
    def events_url(self) -> str:
        """The live server's event log (events.db next to its database)."""
        return sqlite_url(self.work / "live" / "events.db")

    def client(self, which: str = "live") -> Client:
        """A JSON client of ``live`` or ``replica`` with the admin key."""
        if which == "live":
            return Client(self.live.url, self.admin_key)
        return Client(self.replica.url, self.replica_key)

    def stop(self) -> None:
        """SIGTERM both servers."""
        self.live.stop()
        self.replica.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _serving_yaml(work: Path, name: str, *, poll_interval_s: float) -> Path:
    tracking = loop_tracking(work)
    path = work / name / "serving.yaml"
    io.write_yaml(path, {
        "model_name": LOOP_MODEL, "models_dir": str(work / "models"), "version": None,
        "poll_interval_s": poll_interval_s, "database": str(work / name / "sona.db"),
        "access_log": False, "threads": 4,
        # one worker: short-lived loop servers, start-up time matters more than throughput
        "workers": 1,
        "tracking": {"uri": tracking.uri, "artifact_dir": tracking.artifact_dir},
        # the ML-100K search engine is built at start-up; its query encoder loads on the
        # first search, which the loop never makes
        "search": {"warm_up": False}})
    return path


def start_loop(work: str | Path, *, data_dir: str | Path = "datasets",
               experiment: str | Path = LOOP_EXPERIMENT) -> LoopServers:
    """Train and promote the first champion on ML-100K, then start ``live`` and ``replica``.

    ``work`` must be a new or empty folder (its registry and databases start empty).

    Raises:
        DataError: ML-100K is not under ``<data_dir>/ml-100k``.
        SonaError: a server did not become ready (its log tail is included).
    """
    from sona.serving.auth import KeyStore
    from sona.serving.process import ServerProcess

    root = Path(work).resolve()
    ml = load_ml100k(Path(data_dir) / "ml-100k")
    config = loop_experiment(root, path=experiment, data_dir=data_dir, suffix="-base")
    _, first = train_and_promote(config, root / "models", ml, reason="closed loop: ML-100K")
    live_yaml = _serving_yaml(root, "live", poll_interval_s=0)  # swaps on /admin/reload
    replica_yaml = _serving_yaml(root, "replica", poll_interval_s=0.5)  # follows the alias
    key = KeyStore(sqlite_url(root / "live" / "sona.db")).create(["admin"], name="loop")[1]
    replica_key = KeyStore(sqlite_url(root / "replica" / "sona.db")).create(
        ["admin"], name="loop")[1]
    live = ServerProcess(live_yaml).start()
    try:
        replica = ServerProcess(replica_yaml).start()
    except BaseException:
        live.stop()
        raise
    return LoopServers(root, Path(data_dir), ml, key, replica_key, live, replica, first)


@dataclass(frozen=True)
class Retrained:
    """What :func:`retrain` exported, trained and promoted."""

    export: ExportResult
    experiment: ExperimentResult
    promotion: Promotion


def retrain(servers: LoopServers, *, experiment: str | Path = LOOP_EXPERIMENT,
            timeout_s: float = 120.0) -> Retrained:
    """Export the live event log with ML-100K, retrain, promote, hot-swap both servers.

    Raises:
        DataError: the log holds no qualifying viewing event.
        SonaError: a server did not switch to the promoted version within ``timeout_s``.
    """
    from sona.events import EventLog
    from sona.events.export import export_events

    out = servers.work / "events" / "interactions.parquet"
    log = EventLog(servers.events_url)
    try:
        exported = export_events(log, out, base=servers.ml.interactions, progress=False)
    finally:
        log.close()
    config = loop_experiment(servers.work, path=experiment, dataset=out,
                             data_dir=servers.data_dir)
    result, done = train_and_promote(config, servers.work / "models", servers.ml,
                                     reason="closed loop: ML-100K + served events")
    live = servers.client("live")
    live.ok("POST", "/admin/reload", {})
    version = str(done.version)
    probe = str(servers.ml.interactions.users.ids_array[0])
    wait_for_version(live, probe, version, timeout_s=timeout_s)
    wait_for_version(servers.client("replica"), probe, version, timeout_s=timeout_s)
    return Retrained(exported, result, done)


__all__ = ["LOOP_EXPERIMENT", "LOOP_MODEL", "PROMOTION_METRIC", "LoopServers", "Retrained",
           "loop_experiment", "loop_tracking", "retrain", "start_loop", "train_and_promote"]
