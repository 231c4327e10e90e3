"""A/B store fixtures: a fresh repository on SQLite and, where it can start, on PostgreSQL.

The PostgreSQL server is a throwaway one (``sona.testing.postgres``: initdb + pg_ctl on a
free 127.0.0.1 port), started once per session; every test gets a new database on it.
Without the binaries the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sona.ab.repository import ExperimentRepository
from sona.testing.postgres import PostgresServer, PostgresUnavailable, postgres_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'experiments.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend."""
    return _url(request.param, tmp_path, request)


@pytest.fixture
def repo(db_url: str) -> Iterator[ExperimentRepository]:
    """A migrated repository on a fresh database (SQLite and PostgreSQL)."""
    store = ExperimentRepository(db_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_repo(tmp_path: Path) -> Iterator[ExperimentRepository]:
    """A repository on SQLite only (for tests about SQLite itself, or slow loops)."""
    store = ExperimentRepository(f"sqlite:///{tmp_path / 'experiments.db'}")
    yield store
    store.close()
