"""The experiment routes BentoML cannot declare (GET, PUT, PATCH, DELETE with path ids).

BentoML APIs are POST-only, so ``serving/service.py`` mounts this Starlette app next to
its APIs (BentoML's passive mount only claims paths that match a route here). Each route
parses its pydantic body, then runs the :class:`ExperimentsHandler` method inside
``SonaApp.dispatch`` on a worker thread, so statuses, error bodies, API-key scopes and
request metrics are the same as for every other endpoint.

Routes (scope): ``GET /api/v1/experiments`` (admin), ``GET|PATCH|DELETE
/api/v1/experiments/{id}`` (admin), ``PUT /api/v1/experiments/{id}/status`` (admin),
``GET /api/v1/experiments/{id}/metrics`` (read), ``GET /api/v1/experiments/{id}/report``
(read; ``?metric=``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sona.serving.asgi import parse_body
from sona.serving.experiments_api import StatusRequest, UpdateExperimentRequest

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

PREFIX = "/api/v1/experiments"


def experiment_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""

    async def run(request: Request, endpoint: str, scope: str,
                  call: Callable[[SonaApp], Any]) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(
            app.dispatch, endpoint, lambda: call(app), headers=dict(request.headers),
            scope=scope)
        return JSONResponse(body, status_code=status)

    async def listing(request: Request) -> JSONResponse:
        status = request.query_params.get("status")
        return await run(request, "experiments_list", "admin",
                         lambda app: app.experiments.list_experiments(status))

    async def one(request: Request) -> JSONResponse:
        key = request.path_params["experiment_id"]
        if request.method == "GET":
            return await run(request, "experiments_get", "admin",
                             lambda app: app.experiments.get(key))
        if request.method == "DELETE":
            return await run(request, "experiments_delete", "admin",
                             lambda app: app.experiments.delete(key))
        body = await parse_body(request, UpdateExperimentRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "experiments_update", "admin",
                         lambda app: app.experiments.update(key, body))  # type: ignore[arg-type]

    async def status(request: Request) -> JSONResponse:
        key = request.path_params["experiment_id"]
        body = await parse_body(request, StatusRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "experiments_status", "admin",
                         lambda app: app.experiments.set_status(key, body))  # type: ignore[arg-type]

    async def metrics(request: Request) -> JSONResponse:
        key = request.path_params["experiment_id"]
        return await run(request, "experiments_metrics", "read",
                         lambda app: app.experiments.metrics(key))

    async def report(request: Request) -> JSONResponse:
        key = request.path_params["experiment_id"]
        metric = request.query_params.get("metric")
        return await run(request, "experiments_report", "read",
                         lambda app: app.experiments.report(key, metric))

    return Starlette(routes=[
        Route(PREFIX, listing, methods=["GET"]),
        Route(PREFIX + "/{experiment_id}", one, methods=["GET", "PATCH", "DELETE"]),
        Route(PREFIX + "/{experiment_id}/status", status, methods=["PUT"]),
        Route(PREFIX + "/{experiment_id}/metrics", metrics, methods=["GET"]),
        Route(PREFIX + "/{experiment_id}/report", report, methods=["GET"]),
    ])


__all__ = ["PREFIX", "experiment_routes"]
