"""``GET /ready``: one bounded check per component, run side by side (SPEC §5).

Each check is a function returning ``{"status": "healthy" | "degraded" | "unhealthy",
...details}``; raising counts as unhealthy with the error named, and a check still running
after ``timeout_s`` (SPEC: 2 s) counts as unhealthy with "timed out". The checks run at once
on a small pool of their own, so a hung database costs one timeout, not one per database.

The reply is 503 when a *required* component is unhealthy (the model, the serving database,
the search engine: requests that need it would fail); an optional one (the search query
encoder, whose failure only degrades search to keyword) makes the overall status
``degraded`` but keeps 200. :class:`~sona.serving.app.SonaApp` declares which is which.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import wait
from typing import Any

from sqlalchemy import Engine, text

from sona.serving.resilience import named_pool

Check = Callable[[], dict[str, Any]]
STATUSES = ("healthy", "degraded", "unhealthy")


def database_check(engine: Engine) -> Check:
    """A check that the database behind ``engine`` answers ``SELECT 1``."""

    def check() -> dict[str, Any]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "healthy", "dialect": engine.dialect.name}

    return check


def run_checks(checks: Mapping[str, Check], *, required: Collection[str],
               timeout_s: float = 2.0) -> tuple[int, dict[str, Any]]:
    """Run every check with ``timeout_s`` each (concurrently) and summarise.

    Args:
        checks: component name -> check.
        required: components whose unhealthy status makes the reply 503.
        timeout_s: seconds a check may take.

    Returns:
        ``(HTTP status, {"status", "worker", "checks": {name: {"status", "required", ...}}})``;
        ``worker`` is the pid of the worker process that ran the checks (a server runs
        ``workers`` of them, each ready on its own).
    """
    pool = named_pool("ready")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    wait(futures.values(), timeout=timeout_s)
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            result = {"status": "unhealthy", "error": f"timed out after {timeout_s:g} s"}
        elif future.exception() is not None:
            exc = future.exception()
            result = {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
        else:
            result = dict(future.result())
            if result.get("status") not in STATUSES:
                result = {**result, "status": "unhealthy",
                          "error": f"check returned status {result.get('status')!r}"}
        results[name] = {**result, "required": name in required}
    failed = any(r["status"] == "unhealthy" and r["required"] for r in results.values())
    degraded = any(r["status"] != "healthy" for r in results.values())
    overall = "unhealthy" if failed else "degraded" if degraded else "healthy"
    return (503 if failed else 200), {"status": overall, "worker": os.getpid(),
                                      "checks": results}


__all__ = ["STATUSES", "Check", "database_check", "run_checks"]
