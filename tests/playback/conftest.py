"""Playback fixtures: a fresh database URL on SQLite and on PostgreSQL; the ML-100K bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.data.sources import MovieLens
from sona.testing.postgres import PostgresServer
from tests.sync.live import export_ml100k


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend (PostgreSQL skips when unavailable)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture(scope="session")
def ml100k_models(tmp_path_factory: pytest.TempPathFactory, ml100k: MovieLens) -> Path:
    """``models_dir`` holding the ML-100K EASE bundle of the sync tests (version 1)."""
    root = tmp_path_factory.mktemp("ml100k-models")
    export_ml100k(ml100k, root)
    return root
