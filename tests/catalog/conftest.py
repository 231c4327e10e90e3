"""A throwaway PostgreSQL server for the catalog's "PostgreSQL by URL" tests.

Started from the Debian binaries (``initdb``/``pg_ctl`` on PATH) in a temporary folder on a
free 127.0.0.1 port; as root the server runs as the ``postgres`` system user. Tests that
use it skip when PostgreSQL is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://`` URL of a fresh server (stopped after the session)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    prefix: list[str] = []
    folder = tempfile.mkdtemp(prefix="sona-pg-")
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser to drop to the postgres user")
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' system user exists")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    data = os.path.join(folder, "data")
    port = _free_port()
    subprocess.run([*prefix, initdb, "-D", data, "-A", "trust", "-U", "sona", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, pg_ctl, "-D", data, "-o", opts, "-w", "-t", "60", "-l",
                    os.path.join(folder, "log"), "start"], check=True, capture_output=True,
                   timeout=120)
    try:
        yield f"postgresql+psycopg://sona@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """URL of a new, empty database on the session's server: for tests that fill a whole
    catalog (e.g. the MovieLens seed), so others sharing the server's default database
    still start from an empty one."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/" + name
