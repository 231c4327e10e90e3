"""``GET /api/v1/admin/audit`` (admin scope): both audit logs queried through one filter.

Mounted by ``serving/service.py`` like the other Starlette apps; the query parameters are
:class:`~sona.serving.audit.AuditFilter` (``actor``, ``action``, ``resource_type``,
``resource_id``, ``since``, ``until``, ``limit``), parsed by ``parse_query`` (a bad value is
a 400 naming it) and answered by :func:`~sona.serving.audit.query_audit` inside
``SonaApp.dispatch``, so the admin-scope check, error bodies and request metrics are those of
every other route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.serving.asgi import parse_query
from sona.serving.audit import AuditFilter, AuditResponse, query_audit
from sona.serving.routing import Operation, api_route

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

PATH = "/api/v1/admin/audit"


def audit_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the audit query route, bound to the running :class:`SonaApp`."""

    async def audit(request: Request) -> JSONResponse:
        query = parse_query(request, AuditFilter)
        if isinstance(query, JSONResponse):
            return query
        app = get_app()

        def run() -> AuditResponse:
            entries = query_audit(app.audit, app.catalog.store, query)
            return AuditResponse(entries=entries, count=len(entries))

        status, body = await run_in_threadpool(app.dispatch, "admin_audit", run,
                                               headers=dict(request.headers), scope="admin")
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[api_route(PATH, audit, Operation(
        "GET", "Audit rows of the serving and catalog logs, newest first",
        operation_id="admin_audit", query=AuditFilter, response=AuditResponse,
        scope="admin", tag="admin"))])


__all__ = ["PATH", "audit_routes"]
