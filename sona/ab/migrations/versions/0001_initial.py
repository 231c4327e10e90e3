"""Initial A/B schema: experiments, variants, assignments, exposures, outcomes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ab_experiments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("traffic_allocation", sa.Float, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("primary_metric", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
        sa.Column("mlflow_experiment_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "ab_variants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("ab_experiments.id"),
                  nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.UniqueConstraint("experiment_id", "name", name="uq_ab_variants_experiment_name"),
    )
    op.create_table(
        "ab_assignments",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("ab_experiments.id"),
                  nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("variant_id", sa.String(36), sa.ForeignKey("ab_variants.id"), nullable=False),
        sa.Column("bucket", sa.Float, nullable=False),
        sa.Column("assigned_at", sa.Float, nullable=False),
        sa.UniqueConstraint("experiment_id", "user_id",
                            name="uq_ab_assignments_experiment_user"),
    )
    op.create_table(
        "ab_exposures",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("ab_experiments.id"),
                  nullable=False),
        sa.Column("variant_id", sa.String(36), sa.ForeignKey("ab_variants.id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ab_exposures_experiment_user", "ab_exposures",
                    ["experiment_id", "user_id"])
    op.create_table(
        "ab_exposure_items",
        sa.Column("exposure_id", sa.String(36), sa.ForeignKey("ab_exposures.id"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("propensity", sa.Float, nullable=False),
    )
    op.create_table(
        "ab_outcomes",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("ab_experiments.id"),
                  nullable=True),
        sa.Column("variant_id", sa.String(36), sa.ForeignKey("ab_variants.id"), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("item_id", sa.String(128), nullable=True),
        sa.Column("position", sa.Integer, nullable=True),
        sa.Column("exposure_id", sa.String(36), nullable=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("metadata", sa.Text, nullable=True),
    )
    op.create_index("ix_ab_outcomes_experiment_metric", "ab_outcomes",
                    ["experiment_id", "metric"])
    op.create_index("ix_ab_outcomes_user_metric_time", "ab_outcomes",
                    ["user_id", "metric", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_ab_outcomes_user_metric_time", table_name="ab_outcomes")
    op.drop_index("ix_ab_outcomes_experiment_metric", table_name="ab_outcomes")
    op.drop_table("ab_outcomes")
    op.drop_table("ab_exposure_items")
    op.drop_index("ix_ab_exposures_experiment_user", table_name="ab_exposures")
    op.drop_table("ab_exposures")
    op.drop_table("ab_assignments")
    op.drop_table("ab_variants")
    op.drop_table("ab_experiments")
