"""SQLAlchemy 2.0 tables of the catalog database (SQLite by default, PostgreSQL by URL).

- ``content_items``: one row per :class:`~sona.catalog.schema.ContentItem`; scalars are
  columns (filterable), lists/mappings (genres, availability, external ids...) are JSON.
- ``entity_mappings``: ``(external_id, id_type) -> entity_id, confidence`` (SPEC §4,
  migration 008), upserted by entity resolution.
- ``catalog_audit_log``: SPEC §5 audit rows of catalog changes (named apart from the serving
  ``audit_log`` table, whose columns differ, so both can share one database URL).
- ``webhook_registrations`` / ``webhook_events``: webhook secrets and the durable event queue
  (pending -> processing -> completed | failed -> dead_lettered), so no Redis is needed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: catalog times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class ContentRow(Base):
    """A canonical content item (see :class:`~sona.catalog.schema.ContentItem`)."""

    __tablename__ = "content_items"

    canonical_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(Text, index=True)
    original_title: Mapped[str | None] = mapped_column(Text)
    overview: Mapped[str | None] = mapped_column(Text)
    release_year: Mapped[int | None] = mapped_column(Integer, index=True)
    release_date: Mapped[datetime | None]
    runtime_minutes: Mapped[int | None] = mapped_column(Integer)
    original_language: Mapped[str | None] = mapped_column(String(16))
    maturity_rating: Mapped[str | None] = mapped_column(String(8))
    average_rating: Mapped[float | None] = mapped_column(Float)
    rating_count: Mapped[int | None] = mapped_column(Integer)
    popularity_score: Mapped[float] = mapped_column(Float, default=0.0)
    data_quality_score: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    alternate_titles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    themes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    audio_languages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    genres: Mapped[list[Any]] = mapped_column(JSON, default=list)
    external_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    credits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    images: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    series: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    availability: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source_platforms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 little-endian
    embedding_model: Mapped[str | None] = mapped_column(String(128))
    embedding_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_updated: Mapped[datetime]


class EntityMappingRow(Base):
    """``(external_id, id_type)`` resolved to a canonical entity with a confidence."""

    __tablename__ = "entity_mappings"
    __table_args__ = (UniqueConstraint("external_id", "id_type", name="uq_entity_mapping"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255))
    id_type: Mapped[str] = mapped_column(String(64))  # eidr, imdb, tmdb, platform:<name>
    entity_id: Mapped[str] = mapped_column(String(36), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class AuditRow(Base):
    """One audit record (SPEC §5)."""

    __tablename__ = "catalog_audit_log"
    __table_args__ = (Index("ix_audit_action_time", "action", "timestamp"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)


class WebhookRegistrationRow(Base):
    """A platform allowed to post webhooks, with its HMAC secret and rate limit."""

    __tablename__ = "webhook_registrations"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    rate_limit: Mapped[int] = mapped_column(Integer)  # events per minute
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookEventRow(Base):
    """A received webhook event and its processing state (the durable queue)."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_status_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_hash: Mapped[str] = mapped_column(String(64), index=True)
    platform: Mapped[str] = mapped_column(String(32), index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    entity_id: Mapped[str | None] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(index=True)
    next_attempt_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


__all__ = [
    "AuditRow", "Base", "ContentRow", "EntityMappingRow", "UTCDateTime", "WebhookEventRow",
    "WebhookRegistrationRow",
]
