"""Shared fixtures for the whole suite (keep small; builders live in sona.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.data.sources import MovieLens, load_ml100k

ML100K_DIR = Path(__file__).resolve().parent.parent / "datasets" / "ml-100k"


@pytest.fixture(scope="session")
def ml100k() -> MovieLens:
    """MovieLens 100K loaded (md5-verified) once per session; skips when not fetched."""
    if not (ML100K_DIR / "ml-100k.inter").exists():
        pytest.skip(f"MovieLens 100K not fetched into {ML100K_DIR}; run `sona data fetch`")
    return load_ml100k(ML100K_DIR)
