"""Fixtures of the sync tests: a throwaway PostgreSQL (the ML-100K bundle, ``ml100k_models``,
is in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sona.testing.postgres import PostgresServer, PostgresUnavailable, postgres_server


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
