"""Alembic environment of the A/B store.

:func:`sona.ab.repository.migrate` runs it with an open connection in
``config.attributes["connection"]``; the ``alembic`` command line works too, with the
database URL in the ``sqlalchemy.url`` option. The version table is ``ab_alembic_version``
so the A/B store can share a database with other Alembic users (MLflow uses
``alembic_version``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sona.ab.migrations import VERSION_TABLE
from sona.ab.tables import metadata
from sona.db import make_engine


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"),
                          target_metadata=metadata, version_table=VERSION_TABLE,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(str(context.config.get_main_option("sqlalchemy.url")))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


_main()
