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

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.ab.records import Status
from sona.serving.asgi import parse_body, parse_query
from sona.serving.experiments_api import MetricName, StatusRequest, UpdateExperimentRequest
from sona.serving.routing import Operation, api_route

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

PREFIX = "/api/v1/experiments"
_TAG = "experiments"


class ListQuery(BaseModel):
    """``?status=`` of ``GET /api/v1/experiments``."""

    model_config = ConfigDict(extra="forbid")
    status: Status | None = Field(None, description="only experiments in this status")


class ReportQuery(BaseModel):
    """``?metric=`` of the report (default: the experiment's primary metric)."""

    model_config = ConfigDict(extra="forbid")
    metric: MetricName | None = None


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
        query = parse_query(request, ListQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "experiments_list", "admin",
                         lambda app: app.experiments.list_experiments(query.status))

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
        query = parse_query(request, ReportQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "experiments_report", "read",
                         lambda app: app.experiments.report(key, query.metric))

    return Starlette(routes=[
        api_route(PREFIX, listing, Operation(
            "GET", "List experiments with their variants", operation_id="experiments_list",
            query=ListQuery, scope="admin", tag=_TAG)),
        api_route(PREFIX + "/{experiment_id}", one, Operation(
            "GET", "One experiment with its variants", operation_id="experiments_get",
            scope="admin", errors=(404,), tag=_TAG), Operation(
            "PATCH", "Change a draft (description at any time)",
            operation_id="experiments_update", body=UpdateExperimentRequest, scope="admin",
            errors=(404, 409), tag=_TAG), Operation(
            "DELETE", "Delete a draft", operation_id="experiments_delete", scope="admin",
            errors=(404, 409), tag=_TAG)),
        api_route(PREFIX + "/{experiment_id}/status", status, Operation(
            "PUT", "Start, pause or complete an experiment", operation_id="experiments_status",
            body=StatusRequest, scope="admin", errors=(404, 409), tag=_TAG)),
        api_route(PREFIX + "/{experiment_id}/metrics", metrics, Operation(
            "GET", "Per-variant exposures, users and metric counts",
            operation_id="experiments_metrics", scope="read", errors=(404,), tag=_TAG)),
        api_route(PREFIX + "/{experiment_id}/report", report, Operation(
            "GET", "The full analysis of one metric", operation_id="experiments_report",
            query=ReportQuery, scope="read", errors=(404,), tag=_TAG)),
    ])


__all__ = ["PREFIX", "experiment_routes"]
