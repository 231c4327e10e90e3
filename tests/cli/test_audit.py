"""``sona audit``: table and JSON output over both audit logs, filters, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sona import io
from sona.catalog.store import Actor, CatalogStore
from sona.cli import _register, app
from sona.db import sqlite_url
from sona.serving.audit import AuditLog

_register()
runner = CliRunner()


def _setup(tmp_path: Path) -> Path:
    AuditLog(sqlite_url(tmp_path / "sona.db")).record("api_key_created", "api_key", "3",
                                                      user_id="ops")
    catalog = CatalogStore(sqlite_url(tmp_path / "catalog.db"))
    catalog.audit("content_created", "content", "77", {"title": "Alien"},
                  actor=Actor(user_id="ops"))
    catalog.close()
    config = tmp_path / "serving.yaml"
    io.write_yaml(config, {"database": str(tmp_path / "sona.db")})
    return config


def test_json_lists_both_logs_newest_first(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    result = runner.invoke(app, ["audit", "--config", str(config), "--actor", "ops",
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["log"], r["action"], r["resource_id"]) for r in rows] == [
        ("catalog", "content_created", "77"), ("serving", "api_key_created", "3")]


def test_table_and_filters(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    result = runner.invoke(app, ["audit", "--config", str(config), "--resource-type",
                                 "content"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "content_created" in result.output and "content/77" in result.output
    assert "api_key_created" not in result.output
    assert "1 audit row(s)" in result.output


def test_bad_time_is_a_clear_error(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    result = runner.invoke(app, ["audit", "--config", str(config), "--since", "soon"])
    assert result.exit_code == 2 and "ISO-8601" in result.output
