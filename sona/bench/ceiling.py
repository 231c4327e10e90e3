"""Plain Starlette/uvicorn ceiling for the loopback load benchmark.

:data:`app` serves ``POST /api/v1/ping`` -> ``{"ok": true}``, the same trivial JSON endpoint
as the BentoML service, with nothing else in the path (no validation, tracing, metrics or
threads). :class:`CeilingServer` runs it under uvicorn in a subprocess on a free
127.0.0.1 port, with as many worker processes as the service it is compared with, so
``sona bench load`` can measure it with the same load generator (wrk) and connections
and print each BentoML endpoint's RPS as a fraction of this ceiling.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sona.errors import SonaError

log = logging.getLogger(__name__)

#: the trivial endpoint's path (the same as the BentoML service's ``ping``)
PING_PATH = "/api/v1/ping"


async def _ping(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route(PING_PATH, _ping, methods=["POST"])])


def _post_ok(url: str, timeout: float = 1.0) -> bool:
    req = urllib.request.Request(url, data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


class CeilingServer:
    """uvicorn serving :data:`app` in a subprocess on 127.0.0.1; use as a context manager.

    Args:
        port: TCP port (default: a free one).
        workers: uvicorn worker processes (compare like with like: the service's count).
        ready_timeout_s: how long to wait for the first successful ping.
    """

    def __init__(self, *, port: int | None = None, workers: int = 1,
                 ready_timeout_s: float = 30.0) -> None:
        from sona.serving.process import free_port

        self.port = port if port is not None else free_port()
        self.workers = workers
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Launch uvicorn (``workers`` processes, no access log) and block until it answers.

        Raises:
            SonaError: the process exits or does not answer in time.
        """
        cmd = [sys.executable, "-m", "uvicorn", "sona.bench.ceiling:app", "--host",
               "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
               "--no-access-log", "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise SonaError(f"uvicorn exited with {self.proc.returncode}:\n{err[-2000:]}")
            if _post_ok(self.url + PING_PATH):
                log.info("starlette ceiling ready on %s", self.url)
                return self
            time.sleep(0.05)
        self.stop()
        raise SonaError(f"starlette ceiling not ready after {self.ready_timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM uvicorn, SIGKILL it if it lingers."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if proc.stderr is not None:
            proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["PING_PATH", "CeilingServer", "app"]
