"""Fixtures of the sync tests: the ML-100K bundle (session) and a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sona.data.sources import MovieLens
from sona.testing.postgres import PostgresServer, PostgresUnavailable, postgres_server
from tests.sync.live import export_ml100k


@pytest.fixture(scope="session")
def ml100k_models(tmp_path_factory: pytest.TempPathFactory, ml100k: MovieLens) -> Path:
    """``models_dir`` holding the ML-100K EASE bundle (version 1)."""
    root = tmp_path_factory.mktemp("ml100k-models")
    export_ml100k(ml100k, root)
    return root


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
