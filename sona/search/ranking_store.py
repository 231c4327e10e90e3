"""Versioned ranking configs and named ranking variants (SPEC §3.1 "ranking config", §3.8).

Every ``PUT /admin/search/ranking`` stores a new version (history is kept and readable by
version); the newest version is the default ranking. Named variants carry their own
weights, an ``is_active`` flag and a ``traffic_percentage`` for ranking A/B tests; a search
whose ``experiment_variant`` names an active variant is ranked with its weights.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine, sqlite_url
from sona.errors import UnknownIdError
from sona.search.fusion import RankingConfig


class _Base(DeclarativeBase):
    pass


class RankingVersionRow(_Base):
    """One stored version of the default ranking weights."""

    __tablename__ = "ranking_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    weights: Mapped[dict[str, float]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[float] = mapped_column(Float)


class RankingVariantRow(_Base):
    """A named ranking variant for A/B tests."""

    __tablename__ = "ranking_variants"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    weights: Mapped[dict[str, float]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    traffic_percentage: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[float] = mapped_column(Float)


def _weights(config: RankingConfig) -> dict[str, float]:
    return {k: float(v) for k, v in dataclasses.asdict(config.validated()).items()}


class RankingStore:
    """Ranking versions and variants in SQLite (``<data_dir>/search_ranking.db``) or any URL.

    :meth:`current` is read on every search, so it is cached: a write through this store
    (:meth:`put`) takes effect at once, a version stored by another process (another
    worker, ``sona`` CLI) within ``cache_s`` seconds. Without the cache each query paid an
    ORM ``SELECT`` (about 4% of a warm search's CPU in the issue 12 profile).

    Args:
        url: SQLAlchemy URL (default: SQLite under ``data_dir``).
        default: the weights of version 1 when the store is empty.
        cache_s: seconds :meth:`current` is served from memory (0: read every time).
    """

    def __init__(self, url: str | None = None, *, data_dir: str | Path = "datasets/search",
                 default: RankingConfig | None = None, cache_s: float = 1.0) -> None:
        self.cache_s = float(cache_s)
        # (monotonic deadline, (version, weights)); None: read the database next time
        self._current: tuple[float, tuple[int, RankingConfig]] | None = None
        # bumped by every write, so a read that raced a write never caches the old version
        self._generation = 0
        self._lock = threading.Lock()
        self.engine = make_engine(url or sqlite_url(Path(data_dir) / "search_ranking.db"))
        _Base.metadata.create_all(self.engine)
        with Session(self.engine) as sess:
            empty = sess.scalars(select(RankingVersionRow.version).limit(1)).first() is None
        if empty:
            self.put(default or RankingConfig(), note="initial")

    def put(self, config: RankingConfig, note: str = "") -> int:
        """Store ``config`` (validated: weights >= 0 summing to 1) as a new version."""
        row = RankingVersionRow(weights=_weights(config), note=note[:256],
                                created_at=time.time())
        try:
            with Session(self.engine) as sess, sess.begin():
                sess.add(row)
                sess.flush()
                version = int(row.version)
        finally:
            self._invalidate()
        return version

    def _invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._current = None

    def current(self) -> tuple[int, RankingConfig]:
        """The newest version and its weights (cached, see the class docstring)."""
        cached = self._current
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        with self._lock:
            generation = self._generation
        with Session(self.engine) as sess:
            row = sess.scalars(select(RankingVersionRow)
                               .order_by(RankingVersionRow.version.desc()).limit(1)).one()
            found = int(row.version), RankingConfig(**row.weights)
        with self._lock:
            if generation == self._generation and self.cache_s > 0:
                self._current = (time.monotonic() + self.cache_s, found)
        return found

    def version(self, version: int) -> dict[str, Any]:
        """One stored version: ``{version, weights, note, created_at}`` (UnknownIdError)."""
        with Session(self.engine) as sess:
            row = sess.get(RankingVersionRow, int(version))
            if row is None:
                raise UnknownIdError("ranking version", [version])
            return {"version": row.version, "weights": dict(row.weights), "note": row.note,
                    "created_at": row.created_at}

    def put_variant(self, name: str, config: RankingConfig, *, is_active: bool = True,
                    traffic_percentage: float = 0.0) -> dict[str, Any]:
        """Create or replace a named variant.

        Raises:
            ValueError: empty name, bad weights, traffic outside 0-100.
        """
        if not name.strip() or len(name) > 64:
            raise ValueError("variant name must be 1-64 characters")
        if not 0.0 <= traffic_percentage <= 100.0:
            raise ValueError(f"traffic_percentage must lie in [0, 100], got {traffic_percentage}")
        with Session(self.engine) as sess, sess.begin():
            row = sess.get(RankingVariantRow, name) or RankingVariantRow(name=name)
            row.weights = _weights(config)
            row.is_active = bool(is_active)
            row.traffic_percentage = float(traffic_percentage)
            row.updated_at = time.time()
            sess.add(row)
        return self.variant(name)

    def variant(self, name: str) -> dict[str, Any]:
        """A variant as a dict (UnknownIdError when absent)."""
        with Session(self.engine) as sess:
            row = sess.get(RankingVariantRow, name)
            if row is None:
                raise UnknownIdError("ranking variant", [name])
            return {"name": row.name, "weights": dict(row.weights), "is_active": row.is_active,
                    "traffic_percentage": row.traffic_percentage, "updated_at": row.updated_at}

    def variants(self) -> list[dict[str, Any]]:
        """All variants, by name."""
        with Session(self.engine) as sess:
            names = list(sess.scalars(select(RankingVariantRow.name)
                                      .order_by(RankingVariantRow.name)))
        return [self.variant(n) for n in names]

    def delete_variant(self, name: str) -> None:
        """Remove a variant (UnknownIdError when absent)."""
        with Session(self.engine) as sess, sess.begin():
            row = sess.get(RankingVariantRow, name)
            if row is None:
                raise UnknownIdError("ranking variant", [name])
            sess.delete(row)

    def active_variant(self, name: str) -> RankingConfig | None:
        """Weights of an *active* variant called ``name``, else None."""
        with Session(self.engine) as sess:
            row = sess.get(RankingVariantRow, name)
            return RankingConfig(**row.weights) if row is not None and row.is_active else None


__all__ = ["RankingStore"]
