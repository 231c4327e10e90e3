"""``sona users``: create with a role, list, set-role, disable/enable (issue 13)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sona import io
from sona.cli import _register, app
from sona.db import sqlite_url
from sona.serving.users import UserStore


def test_users_commands(tmp_path: Path) -> None:
    _register()
    config = tmp_path / "serving.yaml"
    io.write_yaml(config, {"database": str(tmp_path / "sona.db")})
    runner = CliRunner()
    args = ["--config", str(config)]
    made = runner.invoke(app, ["users", "create", "ops", "--role", "admin",
                               "--password", "a long password", *args])
    assert made.exit_code == 0, made.output
    assert "admin (read, write, admin)" in made.output
    store = UserStore(sqlite_url(tmp_path / "sona.db"))
    assert store.authenticate("ops", "a long password") is not None
    dup = runner.invoke(app, ["users", "create", "ops", "--password", "another pass", *args])
    assert dup.exit_code != 0 and "already taken" in dup.output
    bad = runner.invoke(app, ["users", "create", "x2", "--role", "root", "--password", "p" * 9,
                              *args])
    assert bad.exit_code != 0 and "roles" in bad.output
    assert runner.invoke(app, ["users", "set-role", "ops", "premium_user", *args]).exit_code == 0
    assert store.find("ops").role == "premium_user"  # type: ignore[union-attr]
    assert runner.invoke(app, ["users", "disable", "ops", *args]).exit_code == 0
    assert store.authenticate("ops", "a long password") is None
    listing = runner.invoke(app, ["users", "list", *args])
    assert "ops\tpremium_user\t-\tdisabled" in listing.output
    assert runner.invoke(app, ["users", "enable", "ops", *args]).exit_code == 0
    assert runner.invoke(app, ["users", "disable", "nobody", *args]).exit_code == 1
