"""Start and stop a real ``bentoml serve`` process on 127.0.0.1 (tests, benchmarks, CLI).

:class:`ServerProcess` runs ``bentoml serve service:Sona --working-dir serving`` with the
serving YAML in ``$SONA_SERVING_CONFIG``, waits for ``/readyz`` and our ``/ready``, and
stops the server's whole process tree with :func:`terminate_tree` (BentoML forks workers
into process groups of their own), so nothing outlives the caller. ``sona serve`` uses the
same function to forward SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from sona.errors import SonaError

log = logging.getLogger(__name__)

#: repository root (``serving/service.py`` lives under it)
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def _ready_worker(url: str, timeout: float = 2.0) -> int | None:
    """The pid of the worker that answered ``GET url`` (``/ready``) with 200, else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return int(json.loads(resp.read())["worker"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None


def configured_workers(config: str | Path) -> int:
    """How many worker processes the serving YAML ``config`` starts (0 there: the cores)."""
    from sona.serving.app import load_serving_config

    workers = load_serving_config(config).workers
    return workers if workers > 0 else (os.cpu_count() or 1)


def exit_with_parent(interval_s: float = 1.0) -> threading.Thread:
    """Stop this process (SIGTERM to itself: a graceful shutdown) once its parent is gone.

    A BentoML worker whose arbiter was killed (``kill -9``, an OOM kill) is re-parented and
    would go on holding the listening socket, its memory and its database connections with
    nobody to stop it; like gunicorn's workers, it leaves when it notices. Returns the
    daemon thread that watches (every ``interval_s``).
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.warning("parent process %d is gone: stopping worker %d", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="sona-parent-watch", daemon=True)
    thread.start()
    return thread


def terminate_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, *,
                   timeout_s: float = 15.0) -> int:
    """Send ``sig`` to every process of ``proc``'s tree, wait, then SIGKILL what is left.

    ``proc`` must run in a session of its own (``start_new_session=True``). BentoML's
    arbiter forks its workers into process groups of their own and, on SIGTERM, may exit
    before them, leaving them re-parented to init and still answering (issue 13). So the
    tree is listed *before* anything is signalled, and ``sig`` goes to each of its process
    groups: every uvicorn worker gets it directly and drains its in-flight requests.
    Whatever outlives ``timeout_s`` is killed by pid.

    Args:
        proc: the root process (its own session leader).
        sig: the signal to forward (SIGTERM or SIGINT: both stop uvicorn gracefully).
        timeout_s: grace period before SIGKILL, seconds.

    Returns:
        The root's exit status (negative: killed by that signal).
    """
    import psutil  # a BentoML dependency

    if proc.poll() is not None:
        return int(proc.returncode)
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    own = os.getpgrp()
    groups: set[int] = set()
    for member in tree:
        with contextlib.suppress(psutil.Error, OSError):
            groups.add(os.getpgid(member.pid))
    for group in groups - {own}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    deadline = time.monotonic() + timeout_s
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)
    children = tree[1:]
    _, alive = psutil.wait_procs(children, timeout=max(deadline - time.monotonic(), 0.1))
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    return int(proc.returncode)


class ServerProcess:
    """A SONA BentoML server in a subprocess; use as a context manager.

    Args:
        config: serving YAML path (exported as ``SONA_SERVING_CONFIG``).
        port: TCP port (default: a free one).
        home: ``BENTOML_HOME`` (default: ``<config dir>/bentoml``).
        log_file: where server output goes (default: ``<config dir>/server.log``).
        ready_timeout_s: how long to wait for readiness.
    """

    def __init__(self, config: str | Path, *, port: int | None = None,
                 home: str | Path | None = None, log_file: str | Path | None = None,
                 ready_timeout_s: float = 120.0) -> None:
        self.config = Path(config).resolve()
        self.port = port if port is not None else free_port()
        self.home = Path(home) if home is not None else self.config.parent / "bentoml"
        self.log_file = Path(log_file) if log_file is not None else \
            self.config.parent / f"server-{self.port}.log"
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Launch the server and block until it is ready.

        Raises:
            SonaError: the process exits or is not ready in time (log tail included).
        """
        env = {**os.environ, "SONA_SERVING_CONFIG": str(self.config),
               "BENTOML_HOME": str(self.home), "BENTOML_DO_NOT_TRACK": "true",
               "MLFLOW_DISABLE_TELEMETRY": "true", "OPENBLAS_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
                   p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        bentoml = Path(sys.executable).with_name("bentoml")
        cmd = [str(bentoml), "serve", "service:Sona", "--working-dir",
               str(REPO_ROOT / "serving"), "--host", "127.0.0.1", "--port", str(self.port)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout_s
        # every worker answers /ready on its own: wait until each has said 200 (requests one
        # at a time reach the workers about evenly)
        workers = configured_workers(self.config)
        ready: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise SonaError(f"bentoml serve exited with {self.proc.returncode}:\n"
                                f"{self.log_tail()}")
            if _get(f"{self.url}/readyz") == 200:
                pid = _ready_worker(f"{self.url}/ready")
                if pid is not None:
                    ready.add(pid)
                    if len(ready) >= workers:
                        return self
                    continue
            time.sleep(0.1)
        self.stop()
        raise SonaError(f"server not ready after {self.ready_timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server's whole process tree (see :func:`terminate_tree`)."""
        if self.proc is not None:
            terminate_tree(self.proc, timeout_s=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["REPO_ROOT", "ServerProcess", "free_port", "terminate_tree"]
