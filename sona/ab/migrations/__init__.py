"""Alembic migrations of the A/B store; :func:`migrate` brings a database to the head.

The scripts live next to this file (``env.py``, ``versions/``), so they ship inside the
package and need no ``alembic.ini``. ``migrate`` is safe to call from several processes at
once: the loser of a race finds the schema at head and carries on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

#: folder holding env.py and versions/
MIGRATIONS_DIR = Path(__file__).resolve().parent
#: the version table (not alembic_version: the store may share a database with MLflow)
VERSION_TABLE = "ab_alembic_version"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at these scripts (``url`` for command-line style use)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision id of the scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found under {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the database to ``revision``; returns the revision it is at afterwards."""
    head = head_revision() if revision == "head" else revision
    if current_revision(engine) == head:
        return head
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except DBAPIError:
        # another process migrated at the same time: fine if the schema is now current
        if current_revision(engine) != head:
            raise
    log.info("A/B store at revision %s (%s)", head, engine.url.render_as_string())
    return current_revision(engine)


__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "alembic_config", "current_revision",
           "head_revision", "migrate"]
