"""sona.db.make_engine: the one engine factory and its SQLite settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from sona.db import make_engine, sqlite_url


def _pragma(url: str, name: str, **options: bool) -> int | str:
    engine = make_engine(url, **options)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"PRAGMA {name}")).scalar_one()
    finally:
        engine.dispose()


def test_sqlite_files_get_wal_and_normal_sync_by_default(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "a" / "store.db")
    assert _pragma(url, "journal_mode") == "wal"
    assert _pragma(url, "synchronous") == 1  # NORMAL
    assert _pragma(url, "foreign_keys") == 0


@pytest.mark.parametrize(("options", "synchronous", "foreign_keys"), [
    ({"durable": True}, 2, 0),  # FULL
    ({"foreign_keys": True}, 1, 1),
    ({"durable": True, "foreign_keys": True}, 2, 1),
])
def test_stores_ask_for_durability_and_foreign_keys_by_argument(
        tmp_path: Path, options: dict[str, bool], synchronous: int, foreign_keys: int) -> None:
    url = sqlite_url(tmp_path / "store.db")
    assert _pragma(url, "synchronous", **options) == synchronous
    assert _pragma(url, "foreign_keys", **options) == foreign_keys
