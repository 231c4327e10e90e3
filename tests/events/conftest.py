"""Event-log fixtures: a fresh database URL on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.testing.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend (PostgreSQL skips when unavailable)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()
