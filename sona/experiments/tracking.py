"""MLflow tracking and model registry: the ONLY module in SONA that imports ``mlflow``.

Everything goes through one :class:`mlflow.MlflowClient` bound to the configured URIs, so
no global MLflow state (``mlflow.set_tracking_uri``, active-run stacks) leaks between
experiments or tests. Experiments are created with an explicit ``artifact_location`` under
``TrackingConfig.artifact_dir`` (MLflow 3 otherwise writes artifacts to ``./mlruns`` even
with a sqlite store, ENV.md).

Each run logs the flattened config as params, the git SHA and dataset md5s as tags,
metrics, and the saved :class:`~sona.models.base.Recommender` directory as artifacts
(``model/``); the parent run also receives the leaderboard files.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sona.errors import ConfigError
from sona.experiments.provenance import git_sha
from sona.experiments.spec import TrackingConfig
from sona.models.base import Recommender

# MLflow 3 sends usage telemetry unless this is set, and nothing may leave the machine
# (no internet). Set before mlflow is imported; setdefault keeps a user's explicit choice.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# download_artifacts draws a tqdm bar per call; runs are reported by SONA's own display
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["MODEL_ARTIFACT", "ActiveRun", "RunSummary", "Tracker", "git_sha"]

# alembic prints every sqlite migration at INFO on first use; mlflow logs chatty INFO
for _name in ("mlflow", "alembic", "alembic.runtime.migration"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: MLflow caps one log_batch call at 100 params / 1000 metrics / 100 tags
_BATCH = 100
#: MLflow rejects param values longer than this
_MAX_PARAM = 6000
#: the artifact path the Recommender directory is logged under
MODEL_ARTIFACT = "model"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What :meth:`Tracker.best_run` returns about one run."""

    run_id: str
    run_name: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


class ActiveRun:
    """A run opened by :meth:`Tracker.run`; logs through the tracker's client."""

    def __init__(self, client: MlflowClient, run_id: str, artifact_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.artifact_uri = artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values stringified, truncated to MLflow's 6000-char limit)."""
        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite float metrics (NaN values are skipped: MLflow cannot sort them)."""
        now = _now_ms()
        items = [Metric(str(k), float(v), now, step) for k, v in metrics.items()
                 if v is not None and float(v) == float(v)]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string tags on the run."""
        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, tags=items[start:start + _BATCH])

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy a directory's files into the run's artifacts (under ``artifact_path``)."""
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_file: str | Path, artifact_path: str | None = None) -> None:
        """Copy one file into the run's artifacts."""
        self.client.log_artifact(self.run_id, str(local_file), artifact_path)

    def log_model(self, model: Recommender[Any], artifact_path: str = MODEL_ARTIFACT) -> None:
        """Save ``model`` with :meth:`Recommender.save` and log that directory.

        The directory (``config.yaml``, ``arrays.npz``, ``ids.parquet``) is the artifact;
        :meth:`Tracker.download_model` + :meth:`Recommender.load` read it back.
        """
        with tempfile.TemporaryDirectory(prefix="sona-model-") as tmp:
            model.save(Path(tmp) / artifact_path)
            self.log_artifacts(Path(tmp) / artifact_path, artifact_path)


class Tracker:
    """MLflow tracking store + model registry for SONA experiments.

    Args:
        config: URI of the tracking store and the artifact folder.
    """

    def __init__(self, config: TrackingConfig) -> None:
        self.config = config
        self.uri = _resolve_uri(config.uri)
        self.artifact_root = Path(config.artifact_dir).resolve()
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # --- experiments and runs ------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """Id of experiment ``name``, created with its artifacts under ``artifact_dir``."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        location = (self.artifact_root / _safe_name(name)).as_uri()
        return str(self.client.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(
        self,
        experiment: str,
        run_name: str,
        *,
        parent: ActiveRun | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> Iterator[ActiveRun]:
        """Open a run (nested under ``parent`` when given); it ends FINISHED or FAILED."""
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent is not None:
            all_tags["mlflow.parentRunId"] = parent.run_id
        if description:
            all_tags["mlflow.note.content"] = description
        created = self.client.create_run(self.experiment_id(experiment), tags=all_tags,
                                         run_name=run_name)
        handle = ActiveRun(self.client, created.info.run_id, created.info.artifact_uri)
        try:
            yield handle
        except BaseException:
            self.client.set_terminated(handle.run_id, status="FAILED")
            raise
        self.client.set_terminated(handle.run_id, status="FINISHED")

    def child_runs(self, parent_run_id: str) -> list[Any]:
        """The runs nested under ``parent_run_id`` (MLflow ``Run`` objects)."""
        parent = self.client.get_run(parent_run_id)
        return list(self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        ))

    def best_run(self, experiment_name: str, metric: str, *, maximize: bool = True) -> RunSummary:
        """The run of ``experiment_name`` with the best value of ``metric``.

        Raises:
            ConfigError: no such experiment, or no run logged ``metric``.
        """
        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None:
            raise ConfigError(f"no MLflow experiment named {experiment_name!r} at {self.uri}")
        order = "DESC" if maximize else "ASC"
        runs = self.client.search_runs([exp.experiment_id], filter_string="",
                                       order_by=[f"metrics.`{metric}` {order}"], max_results=1000)
        scored = [r for r in runs if metric in r.data.metrics]
        if not scored:
            raise ConfigError(f"no run of experiment {experiment_name!r} logged metric {metric!r}")
        pick = (max if maximize else min)(scored, key=lambda r: r.data.metrics[metric])
        return RunSummary(pick.info.run_id, pick.info.run_name or "", dict(pick.data.metrics),
                          dict(pick.data.params), dict(pick.data.tags))

    # --- model registry ------------------------------------------------------------------

    def register_model(self, run_id: str, name: str, artifact_path: str = MODEL_ARTIFACT) -> int:
        """Register the model directory logged by ``run_id`` as a new version of ``name``.

        Returns:
            The new version number.

        Raises:
            ConfigError: the run has no artifact at ``artifact_path``.
        """
        run = self.client.get_run(run_id)
        logged = {f.path for f in self.client.list_artifacts(run_id)}
        if artifact_path not in logged:
            raise ConfigError(f"run {run_id} has no artifact {artifact_path!r} "
                              f"(found: {sorted(logged) or 'none'})")
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
        version = self.client.create_model_version(name, source=source, run_id=run_id)
        return int(version.version)

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``alias`` (e.g. "champion") of registered model ``name`` at ``version``."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def get_alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None when the alias is not set."""
        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def promote(self, name: str, version: int | str, alias: str = "champion",
                previous_alias: str = "previous") -> int | None:
        """Move ``alias`` to ``version``; the version that held it gets ``previous_alias``.

        Returns:
            The version that held ``alias`` before (None if none or the same version).
        """
        before = self.get_alias_version(name, alias)
        if before is not None and before != int(version):
            self.set_alias(name, previous_alias, before)
        self.set_alias(name, alias, version)
        return before if before != int(version) else None

    def download_model(self, name: str, alias: str, dst: str | Path | None = None) -> Path:
        """Download the model directory behind ``name@alias``; load it with ``Recommender.load``.

        Raises:
            ConfigError: the alias is not set on ``name``.
        """
        version = self.get_alias_version(name, alias)
        if version is None:
            raise ConfigError(f"registered model {name!r} has no alias {alias!r}")
        return self.download_model_version(name, version, dst)

    def download_model_version(self, name: str, version: int | str,
                               dst: str | Path | None = None) -> Path:
        """Download the model directory of ``name`` version ``version``.

        Raises:
            ConfigError: no such registered model version.
        """
        source = self.model_version_info(name, version)["source"]
        target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="sona-model-"))
        target.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target),
                                                    tracking_uri=self.uri)
        return Path(local)

    def model_version_info(self, name: str, version: int | str) -> dict[str, Any]:
        """``{"version", "run_id", "source", "tags", "aliases"}`` of one registered version.

        Raises:
            ConfigError: no such registered model version.
        """
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ConfigError(f"registered model {name!r} has no version {version}") from exc
        return {"version": int(mv.version), "run_id": mv.run_id, "source": mv.source,
                "tags": dict(mv.tags or {}), "aliases": list(mv.aliases or [])}

    def set_version_tags(self, name: str, version: int | str, tags: Mapping[str, Any]) -> None:
        """Set string tags on one registered model version (e.g. a promotion's reason)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), str(key), str(value))


def _resolve_uri(uri: str) -> str:
    """Make a relative ``sqlite:///x.db`` absolute and create its folder."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):])
        path = path if path.is_absolute() else path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{path}"
    return uri


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM else text[:_MAX_PARAM - 3] + "..."


def _now_ms() -> int:
    return int(time.time() * 1000)
