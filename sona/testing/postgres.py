"""A throwaway PostgreSQL server for tests: ``initdb`` in a temporary folder, ``pg_ctl``
on a free 127.0.0.1 port, removed on exit.

Uses the Debian binaries (``initdb``/``pg_ctl`` on PATH or under
``/usr/lib/postgresql/<version>/bin``). As root, the server runs as the ``postgres``
system user (``initdb`` refuses root). :func:`postgres_server` raises
:class:`PostgresUnavailable` with the reason when no server can be started, so a fixture
can skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here (the message says why)."""


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server."""

    host: str
    port: int
    user: str
    folder: str

    def url(self, database: str = "postgres") -> str:
        """``postgresql+psycopg://`` URL of ``database``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Start a fresh server for the duration of the ``with`` block.

    Args:
        fsync: keep PostgreSQL's fsync on (off by default: faster, and tests that kill a
            client, not the database, do not need it).

    Raises:
        PostgresUnavailable: binaries missing, or running as root without a ``postgres``
            user / ``runuser``, or the server failed to start (pg_ctl's message is included).
    """
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PostgresUnavailable("PostgreSQL binaries (initdb, pg_ctl) are not installed; "
                                  "apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailable("psycopg is not installed") from exc
    prefix: list[str] = []
    folder = tempfile.mkdtemp(prefix="sona-pg-")
    if os.geteuid() == 0:
        import pwd

        runuser = shutil.which("runuser")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if runuser is None or user is None:
            shutil.rmtree(folder, ignore_errors=True)
            raise PostgresUnavailable("running as root without runuser and a 'postgres' user")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), _free_port()
    log = os.path.join(folder, "log")
    try:
        subprocess.run([*prefix, initdb, "-D", data, "-A", "trust", "-U", "sona", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        opts = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
                f"-c fsync={'on' if fsync else 'off'} -c max_connections=200")
        subprocess.run([*prefix, pg_ctl, "-D", data, "-o", opts, "-w", "-t", "60", "-l", log,
                        "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {exc}: "
                                  f"{detail.decode(errors='replace')[-2000:]}") from exc
    try:
        yield PostgresServer("127.0.0.1", port, "sona", folder)
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["PostgresServer", "PostgresUnavailable", "postgres_server"]
