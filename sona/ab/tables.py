"""Relational schema of the A/B store (SPEC §1 "Experiment records"), SQLAlchemy Core.

The Alembic migrations in ``sona/ab/migrations/versions`` create exactly these tables (a
test compares them); every name starts with ``ab_`` so the store can share a database with
the serving tables. Times are Unix seconds (float) in every dialect, so SQLite and
PostgreSQL compare and sort them the same way.

- ``ab_experiments``: one row per experiment; ``salt`` seeds the assignment hash.
- ``ab_variants``: arms with a relative ``weight`` and a JSON ``config`` that changes serving.
- ``ab_assignments``: the sticky user -> variant map, unique per (experiment, user).
- ``ab_exposures`` + ``ab_exposure_items``: one row per served list and one per shown item
  (position, score, propensity under the serving policy: the input of off-policy evaluation).
- ``ab_outcomes``: events (click, play, completion, rating, watch_time, ...), unique by
  ``event_id`` so a retried batch never double counts; ``experiment_id`` is NULL for events
  of users in no experiment (the pre-period data CUPED uses).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: autoincrementing 64-bit key (SQLite only autoincrements INTEGER PRIMARY KEY)
_BigId = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "ab_experiments", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("traffic_allocation", Float, nullable=False),
    Column("salt", String(64), nullable=False),
    Column("primary_metric", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("mlflow_experiment_id", String(64), nullable=True),
)

variants = Table(
    "ab_variants", metadata,
    Column("id", String(36), primary_key=True),
    Column("experiment_id", String(36), ForeignKey("ab_experiments.id"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("weight", Float, nullable=False),
    Column("config", Text, nullable=False),
    UniqueConstraint("experiment_id", "name", name="uq_ab_variants_experiment_name"),
)

assignments = Table(
    "ab_assignments", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("experiment_id", String(36), ForeignKey("ab_experiments.id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("variant_id", String(36), ForeignKey("ab_variants.id"), nullable=False),
    Column("bucket", Float, nullable=False),
    Column("assigned_at", Float, nullable=False),
    UniqueConstraint("experiment_id", "user_id", name="uq_ab_assignments_experiment_user"),
)

exposures = Table(
    "ab_exposures", metadata,
    Column("id", String(36), primary_key=True),
    Column("experiment_id", String(36), ForeignKey("ab_experiments.id"), nullable=False),
    Column("variant_id", String(36), ForeignKey("ab_variants.id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("n_items", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_ab_exposures_experiment_user", "experiment_id", "user_id"),
)

exposure_items = Table(
    "ab_exposure_items", metadata,
    Column("exposure_id", String(36), ForeignKey("ab_exposures.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_id", String(128), nullable=False),
    Column("score", Float, nullable=False),
    Column("propensity", Float, nullable=False),
)

outcomes = Table(
    "ab_outcomes", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("experiment_id", String(36), ForeignKey("ab_experiments.id"), nullable=True),
    Column("variant_id", String(36), ForeignKey("ab_variants.id"), nullable=True),
    Column("user_id", String(128), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("item_id", String(128), nullable=True),
    Column("position", Integer, nullable=True),
    Column("exposure_id", String(36), nullable=True),
    Column("recorded_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("metadata", Text, nullable=True),
    Index("ix_ab_outcomes_experiment_metric", "experiment_id", "metric"),
    Index("ix_ab_outcomes_user_metric_time", "user_id", "metric", "recorded_at"),
)

__all__ = ["assignments", "experiments", "exposure_items", "exposures", "metadata", "outcomes",
           "variants"]
