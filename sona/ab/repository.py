"""Persistent experiment repository over SQLAlchemy (SQLite WAL by default, PostgreSQL by URL).

Where the data lives: an explicit URL, else ``$SONA_DB_URL`` (e.g.
``postgresql+psycopg://sona@127.0.0.1:5432/sona``, read through :func:`sona.config.env`),
else the SQLite file ``<data_dir>/experiments.db``. SQLite runs in WAL mode with
``synchronous=FULL`` here (stricter than the other stores' NORMAL): an event batch is
acknowledged only after its commit is on disk, so neither a killed server nor a power
cut loses an acknowledged event. The schema is created and upgraded by the Alembic
migrations in ``sona/ab/migrations`` when the repository opens.

Writes that can race are idempotent inserts (``INSERT ... ON CONFLICT DO NOTHING``):
assignments (unique per experiment and user) and outcome events (unique ``event_id``).
Analysis reads (``*_frame``) live in :mod:`sona.ab.queries`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from sona import config as sona_config
from sona.ab import assignment as hashing
from sona.ab import queries
from sona.ab import tables as t
from sona.ab.migrations import migrate
from sona.ab.records import (
    METRIC_PATTERN,
    STATUSES,
    TRANSITIONS,
    VARIANT_PATTERN,
    DuplicateNameError,
    EventResult,
    Experiment,
    ExposedItem,
    OutcomeEvent,
    StateError,
    Variant,
    VariantConfig,
    VariantSpec,
)
from sona.db import make_engine, sqlite_url
from sona.errors import UnknownIdError

log = logging.getLogger(__name__)

#: environment variable naming the database (read only through sona.config.env)
DB_URL_ENV = "SONA_DB_URL"
#: SQLite file name under the data directory
SQLITE_FILE = "experiments.db"


def database_url(url: str | None = None, data_dir: str | Path = "data") -> str:
    """The A/B store's URL: ``url``, else ``$SONA_DB_URL``, else ``<data_dir>/experiments.db``."""
    chosen = url or sona_config.env(DB_URL_ENV)
    return chosen if chosen else sqlite_url(Path(data_dir) / SQLITE_FILE)


def insert_ignore(conn: Connection, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for SQLite and PostgreSQL."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"the A/B store supports sqlite and postgresql, not {dialect}")


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 128:
        raise ValueError(f"experiment name must be 1-128 characters, got {name!r}")
    return name


def _check_variants(specs: Sequence[VariantSpec], traffic: float) -> list[VariantConfig]:
    names = [s.name for s in specs]
    for name in names:
        if not VARIANT_PATTERN.match(name):
            raise ValueError(f"variant name {name!r}: use letters, digits, '-' or '_' "
                             f"(at most 64)")
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    hashing.check_weights([s.weight for s in specs], traffic)
    return [VariantConfig.parse(s.config) for s in specs]


class ExperimentRepository:
    """Experiments, variants, assignments, exposures and outcomes in one database.

    Args:
        url: SQLAlchemy URL (see :func:`database_url` for the default).
        data_dir: folder of the default SQLite file.
        migrate_schema: run the Alembic migrations (to head) on open.
    """

    def __init__(self, url: str | None = None, *, data_dir: str | Path = "data",
                 migrate_schema: bool = True) -> None:
        self.url = database_url(url, data_dir)
        # durable: an acknowledged assignment or event survives a power cut
        self.engine = make_engine(self.url, durable=True, foreign_keys=True)
        if migrate_schema:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # --- experiments ------------------------------------------------------------------

    def create_experiment(self, name: str, variants: Sequence[VariantSpec], *,
                          description: str | None = None, traffic_allocation: float = 1.0,
                          primary_metric: str = "click", salt: str | None = None
                          ) -> Experiment:
        """Store a new ``draft`` experiment.

        Raises:
            ValueError: invalid name, variants, weights, traffic or metric.
            DuplicateNameError: the name is taken.
            ConfigError: a variant config has an unknown key or a wrong type.
        """
        name = _check_name(name)
        configs = _check_variants(variants, traffic_allocation)
        if not METRIC_PATTERN.match(primary_metric):
            raise ValueError(f"primary_metric {primary_metric!r}: use a lower-case identifier")
        exp_id, now = str(uuid.uuid4()), time.time()
        rows = [{"id": str(uuid.uuid4()), "experiment_id": exp_id, "ordinal": i,
                 "name": s.name, "weight": float(s.weight),
                 "config": json.dumps(c.to_dict(), sort_keys=True)}
                for i, (s, c) in enumerate(zip(variants, configs, strict=True))]
        try:
            with self.engine.begin() as conn:
                conn.execute(t.experiments.insert().values(
                    id=exp_id, name=name, description=description, status="draft",
                    traffic_allocation=float(traffic_allocation), salt=salt or exp_id,
                    primary_metric=primary_metric, created_at=now, updated_at=now))
                conn.execute(t.variants.insert(), rows)
        except IntegrityError as exc:
            raise DuplicateNameError(f"an experiment named {name!r} already exists") from exc
        return self.get(exp_id)

    def get(self, key: str) -> Experiment:
        """An experiment by id or by name.

        Raises:
            UnknownIdError: no such experiment.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.id == key)).first()
            if row is None:
                row = conn.execute(select(t.experiments)
                                   .where(t.experiments.c.name == key)).first()
            if row is None:
                raise UnknownIdError("experiment", [key])
            return self._load(conn, [row])[0]

    def list_experiments(self, status: str | None = None) -> list[Experiment]:
        """Experiments (optionally of one status), oldest first."""
        q = select(t.experiments).order_by(t.experiments.c.created_at, t.experiments.c.id)
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}; valid: {list(STATUSES)}")
            q = q.where(t.experiments.c.status == status)
        with self.engine.connect() as conn:
            return self._load(conn, list(conn.execute(q)))

    def running_experiments(self) -> list[Experiment]:
        """Running experiments in start order (the first one a user is in wins)."""
        return sorted(self.list_experiments("running"),
                      key=lambda e: (e.started_at or 0.0, e.id))

    def _load(self, conn: Connection, rows: Sequence[Any]) -> list[Experiment]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        arms: dict[str, list[Variant]] = {i: [] for i in ids}
        for v in conn.execute(select(t.variants).where(t.variants.c.experiment_id.in_(ids))
                              .order_by(t.variants.c.ordinal)):
            arms[v.experiment_id].append(Variant(v.id, v.name, v.weight,
                                                 VariantConfig.parse(json.loads(v.config)),
                                                 v.ordinal))
        return [Experiment(r.id, r.name, r.description, r.status, r.traffic_allocation, r.salt,
                           r.primary_metric, r.created_at, r.updated_at, r.started_at,
                           r.completed_at, r.mlflow_experiment_id, tuple(arms[r.id]))
                for r in rows]

    def update_experiment(self, key: str, *, description: str | None = None,
                          traffic_allocation: float | None = None,
                          variants: Sequence[VariantSpec] | None = None,
                          primary_metric: str | None = None) -> Experiment:
        """Change a draft (the description may change at any time).

        Raises:
            StateError: arms, traffic or metric of a started experiment.
        """
        exp = self.get(key)
        structural = traffic_allocation is not None or variants is not None \
            or primary_metric is not None
        if structural and exp.status != "draft":
            raise StateError(f"experiment {exp.name!r} is {exp.status}: only a draft's "
                             f"variants, traffic_allocation and primary_metric can change")
        traffic = exp.traffic_allocation if traffic_allocation is None else traffic_allocation
        specs = variants if variants is not None else [
            VariantSpec(v.name, v.weight, v.config.to_dict()) for v in exp.variants]
        configs = _check_variants(specs, traffic)
        if primary_metric is not None and not METRIC_PATTERN.match(primary_metric):
            raise ValueError(f"primary_metric {primary_metric!r}: use a lower-case identifier")
        values: dict[str, Any] = {"updated_at": time.time(), "traffic_allocation": traffic}
        if description is not None:
            values["description"] = description
        if primary_metric is not None:
            values["primary_metric"] = primary_metric
        with self.engine.begin() as conn:
            conn.execute(update(t.experiments).where(t.experiments.c.id == exp.id)
                         .values(**values))
            if variants is not None:
                conn.execute(delete(t.variants).where(t.variants.c.experiment_id == exp.id))
                conn.execute(t.variants.insert(), [
                    {"id": str(uuid.uuid4()), "experiment_id": exp.id, "ordinal": i,
                     "name": s.name, "weight": float(s.weight),
                     "config": json.dumps(c.to_dict(), sort_keys=True)}
                    for i, (s, c) in enumerate(zip(specs, configs, strict=True))])
        return self.get(exp.id)

    def delete_experiment(self, key: str) -> None:
        """Delete a draft (started experiments keep their data: complete them instead).

        Raises:
            StateError: the experiment is not a draft.
        """
        exp = self.get(key)
        if exp.status != "draft":
            raise StateError(f"experiment {exp.name!r} is {exp.status}; only drafts can be "
                             f"deleted (complete it to stop it)")
        with self.engine.begin() as conn:
            conn.execute(delete(t.variants).where(t.variants.c.experiment_id == exp.id))
            conn.execute(delete(t.experiments).where(t.experiments.c.id == exp.id))

    def set_status(self, key: str, status: str) -> Experiment:
        """Move through the lifecycle draft -> running <-> paused -> completed.

        Starting checks the arms again (>= 2 variants, weights sum to 1) and sets
        ``started_at`` once; completing sets ``completed_at``.

        Raises:
            ValueError: ``status`` is not a status name.
            StateError: the move is not allowed from the current status.
        """
        if status not in STATUSES:
            raise ValueError(f"invalid status {status!r}; valid statuses: {list(STATUSES)}")
        exp = self.get(key)
        if status == exp.status:
            return exp
        if status not in TRANSITIONS[exp.status]:
            raise StateError(f"cannot move experiment {exp.name!r} from {exp.status} to "
                             f"{status}; allowed: {list(TRANSITIONS[exp.status]) or 'none'}")
        if status == "running":
            hashing.check_weights(exp.weights, exp.traffic_allocation)
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == "running" and exp.started_at is None:
            values["started_at"] = now
        if status == "completed":
            values["completed_at"] = now
        with self.engine.begin() as conn:
            done = conn.execute(update(t.experiments).where(
                (t.experiments.c.id == exp.id) & (t.experiments.c.status == exp.status))
                .values(**values))
            if not done.rowcount:  # type: ignore[attr-defined]
                raise StateError(f"experiment {exp.name!r} changed status concurrently; retry")
        log.info("experiment %s: %s -> %s", exp.name, exp.status, status)
        return self.get(exp.id)

    def set_mlflow_experiment(self, key: str, mlflow_experiment_id: str) -> None:
        """Remember the MLflow experiment the analysis logs to."""
        exp = self.get(key)
        with self.engine.begin() as conn:
            conn.execute(update(t.experiments).where(t.experiments.c.id == exp.id)
                         .values(mlflow_experiment_id=mlflow_experiment_id))

    # --- assignment ---------------------------------------------------------------------

    def assignment(self, experiment: Experiment, user_id: str) -> Variant | None:
        """The stored variant of ``user_id`` (None if never assigned)."""
        with self.engine.connect() as conn:
            vid = conn.execute(select(t.assignments.c.variant_id).where(
                (t.assignments.c.experiment_id == experiment.id)
                & (t.assignments.c.user_id == user_id))).scalar()
        return None if vid is None else experiment.variant(vid)

    def assign(self, experiment: Experiment, user_id: str) -> Variant | None:
        """Sticky assignment: the stored variant, else hash, store and return it.

        Users outside the traffic allocation, and new users of an experiment that is not
        running, get None (and nothing is stored).
        """
        stored = self.assignment(experiment, user_id)
        if stored is not None or experiment.status != "running":
            return stored
        u = hashing.bucket(experiment.salt, user_id)
        index = int(hashing.choose_variants([u], experiment.weights,  # type: ignore[arg-type]
                                            experiment.traffic_allocation)[0])
        if index < 0:
            return None
        variant = experiment.variants[index]
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, t.assignments).values(
                experiment_id=experiment.id, user_id=user_id, variant_id=variant.id,
                bucket=u, assigned_at=time.time()))
        return variant

    # --- exposures ----------------------------------------------------------------------

    def record_exposure(self, experiment: Experiment, variant: Variant, user_id: str,
                        items: Sequence[ExposedItem], *, endpoint: str = "recommendations",
                        model_version: str | None = None) -> str:
        """Log one served list (items with positions, scores, propensities); returns its id.

        Raises:
            ValueError: a propensity outside (0, 1] or duplicate positions.
        """
        positions = [i.position for i in items]
        if len(set(positions)) != len(positions):
            raise ValueError(f"exposure positions must be unique, got {positions}")
        bad = [i.propensity for i in items if not 0.0 < i.propensity <= 1.0]
        if bad:
            raise ValueError(f"propensities must be in (0, 1], got {bad[:3]}")
        exposure_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(t.exposures.insert().values(
                id=exposure_id, experiment_id=experiment.id, variant_id=variant.id,
                user_id=user_id, endpoint=endpoint, model_version=model_version,
                n_items=len(items), created_at=time.time()))
            if items:
                conn.execute(t.exposure_items.insert(), [
                    {"exposure_id": exposure_id, "position": int(i.position),
                     "item_id": str(i.item_id), "score": float(i.score),
                     "propensity": float(i.propensity)} for i in items])
        return exposure_id

    # --- outcomes and reads (implemented in sona.ab.events / sona.ab.queries) ------------

    def record_events(self, events: Sequence[OutcomeEvent]) -> list[EventResult]:
        """Store a batch of outcome events in one transaction, idempotent by ``event_id``
        (see :mod:`sona.ab.events` for attribution and rejection rules)."""
        from sona.ab.events import record_events

        return record_events(self.engine, events)

    def user_frame(self, experiment: Experiment, metric: str) -> pd.DataFrame:
        """Per-user analysis frame (:func:`sona.ab.queries.user_frame`)."""
        return queries.user_frame(self.engine, experiment, metric)

    def outcome_frame(self, experiment: Experiment, metric: str) -> pd.DataFrame:
        """Attributed events of one metric (:func:`sona.ab.queries.outcome_frame`)."""
        return queries.outcome_frame(self.engine, experiment, metric)

    def exposure_item_frame(self, experiment: Experiment, metric: str = "click",
                            variant: str | None = None) -> pd.DataFrame:
        """Shown items, propensities, rewards (:func:`sona.ab.queries.exposure_item_frame`)."""
        return queries.exposure_item_frame(self.engine, experiment, metric, variant)

    def metrics_summary(self, experiment: Experiment) -> dict[str, Any]:
        """SPEC §2.10 per-variant metrics (:func:`sona.ab.queries.metrics_summary`)."""
        return queries.metrics_summary(self.engine, experiment)

    def count_outcomes(self, experiment_id: str | None = None) -> int:
        """Stored outcome rows (of one experiment, or all)."""
        return queries.count_outcomes(self.engine, experiment_id)

    def exposure(self, exposure_id: str) -> Mapping[str, Any] | None:
        """One exposure row as a mapping (None if unknown)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.exposures).where(t.exposures.c.id == exposure_id)).first()
        return None if row is None else dict(row._mapping)


__all__ = ["DB_URL_ENV", "SQLITE_FILE", "ExperimentRepository", "database_url", "insert_ignore"]
