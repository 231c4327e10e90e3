"""kill -9 during a burst of batched event posts loses no acknowledged event (issue 11 item
5), on SQLite and PostgreSQL: the server is killed with SIGKILL mid-burst, then every id it
acknowledged must be in the log (the same run ``sona bench events`` reports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sona.bench.events import kill_during_burst, synthetic_batches
from sona.db import sqlite_url
from sona.serving.auth import KeyStore
from tests.sync.live import write_config

pytestmark = pytest.mark.slow


def test_kill_9_loses_no_acknowledged_event(db_url: str, tmp_path: Path,
                                            ml100k_models: Path) -> None:
    config = write_config(tmp_path / "serving.yaml", ml100k_models, events={"url": db_url})
    key = KeyStore(sqlite_url(tmp_path / "sona.db")).create(["write"])[1]
    batches = synthetic_batches(30_000, 50, titles=[str(i) for i in range(1, 1683)],
                                users=[str(u) for u in range(1, 944)], prefix="kill")
    result = kill_during_burst(config, key, db_url, batches, min_acknowledged=1500)
    print(f"\n{db_url.split(':')[0]}: {result.to_dict()}")
    assert result.acknowledged >= 1500  # the kill came mid-burst, after real traffic
    assert result.stored < 30_000  # ... and before the burst was over
    assert result.lost == 0
    assert result.integrity in ("ok", "postgresql")
