"""SQLAlchemy engines for SONA's small relational stores (profiles, API keys, adapters, audit).

The one engine factory (STYLE §11): every store gets its engine from :func:`make_engine`, so
every SQLite file has the same settings: WAL journal (readers never block the writer), a busy
timeout instead of "database is locked" errors under concurrent requests, and connections
usable from the server's worker threads. A store that needs more asks for it by argument
(the A/B store: ``durable`` commits and enforced foreign keys) instead of wrapping the engine.
Any other SQLAlchemy URL (PostgreSQL via psycopg) is passed through unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

#: seconds a writer waits for SQLite's lock before failing
_BUSY_TIMEOUT_S = 30


def sqlite_url(path: str | Path) -> str:
    """``sqlite:///<absolute path>`` for a database file (its folder is created)."""
    p = Path(path).resolve()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def make_engine(url: str, *, durable: bool = False, foreign_keys: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and cross-thread use.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///serving/sona.db`` or ``sqlite://`` (memory).
        durable: SQLite only: ``synchronous=FULL``, so an acknowledged commit survives a
            power cut (default ``NORMAL``: WAL-safe against crashes, not power loss).
        foreign_keys: SQLite only: enforce ``FOREIGN KEY`` constraints (off by default in
            SQLite; PostgreSQL always enforces them).
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url not in ("sqlite:///", "sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_S}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")
        if foreign_keys:
            cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


__all__ = ["make_engine", "sqlite_url"]
