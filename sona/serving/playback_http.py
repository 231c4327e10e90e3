"""HTTP routes of playback and the event log (SPEC §5; issue 11).

Mounted by ``serving/service.py`` next to the APIs, like the sync and catalog routes; each
route parses its pydantic body, query or path, then runs the
:class:`~sona.serving.playback_api.PlaybackHandler` method inside ``SonaApp.dispatch`` on a
worker thread, so statuses, error bodies, API-key scopes and request metrics are those of
every other endpoint. Each route is declared with :func:`~sona.serving.routing.api_route`,
so the OpenAPI document lists its request, response and error schemas.

Routes (scope):

* ``POST /api/v1/playback/sessions`` (write) start a session -> session + resume position;
  ``GET /api/v1/playback/sessions/{session_id}`` (read);
  ``POST .../{session_id}/heartbeat`` (write) ``{position_seconds, paused?}``;
  ``POST .../{session_id}/stop`` (write) ``{position_seconds}`` -> the logged
  ``playback_complete`` / ``playback_abandon`` (a repeated stop answers the same);
* ``POST /api/v1/playback/progress`` (write) upsert -> ``progress_percentage``,
  ``last_position``; ``GET /api/v1/playback/progress?user_id=&content_id=`` (read);
  ``GET /api/v1/playback/continue-watching?user_id=&limit=20`` (read);
* ``POST /api/v1/events/log`` (write) up to 1,000 events, acknowledged once committed
  (ids already logged come back as ``duplicates``, stored once);
  ``GET /api/v1/events/log?user_id=&after_seq=&limit=`` (read) a user's events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.serving.asgi import parse_body, parse_query, validation_body
from sona.serving.playback_api import PlaybackHandler
from sona.serving.playback_schemas import (
    ContinueWatchingQuery,
    ContinueWatchingResponse,
    EventsQuery,
    EventsResponse,
    HeartbeatRequest,
    LogEventsRequest,
    LogEventsResponse,
    ProgressQuery,
    ProgressRequest,
    ProgressResponse,
    SessionPath,
    SessionResponse,
    StartSessionRequest,
    StopRequest,
    StopResponse,
)
from sona.serving.routing import Operation, api_route

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

PLAYBACK_PREFIX = "/api/v1/playback"
EVENTS_PATH = "/api/v1/events/log"
M = TypeVar("M", bound=BaseModel)


def _path(request: Request) -> SessionPath | JSONResponse:
    try:
        return SessionPath.model_validate(dict(request.path_params))
    except ValidationError as exc:
        return JSONResponse(validation_body(exc), status_code=400)


def playback_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""

    async def run(request: Request, endpoint: str, scope: str,
                  call: Callable[[PlaybackHandler], BaseModel]) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(
            app.dispatch, endpoint, lambda: call(app.playback),
            headers=dict(request.headers), scope=scope)
        return JSONResponse(body, status_code=status)

    async def body_of(request: Request, model: type[M]) -> M | JSONResponse:
        parsed = await parse_body(request, model)
        return parsed  # type: ignore[return-value]

    async def start(request: Request) -> JSONResponse:
        req = await body_of(request, StartSessionRequest)
        if isinstance(req, JSONResponse):
            return req
        return await run(request, "playback_start", "write", lambda h: h.start(req))

    async def session(request: Request) -> JSONResponse:
        path = _path(request)
        if isinstance(path, JSONResponse):
            return path
        return await run(request, "playback_session", "read",
                         lambda h: h.session(path.session_id))

    async def heartbeat(request: Request) -> JSONResponse:
        path = _path(request)
        if isinstance(path, JSONResponse):
            return path
        req = await body_of(request, HeartbeatRequest)
        if isinstance(req, JSONResponse):
            return req
        return await run(request, "playback_heartbeat", "write",
                         lambda h: h.heartbeat(path.session_id, req))

    async def stop(request: Request) -> JSONResponse:
        path = _path(request)
        if isinstance(path, JSONResponse):
            return path
        req = await body_of(request, StopRequest)
        if isinstance(req, JSONResponse):
            return req
        return await run(request, "playback_stop", "write",
                         lambda h: h.stop(path.session_id, req))

    async def progress(request: Request) -> JSONResponse:
        if request.method == "GET":
            query = parse_query(request, ProgressQuery)
            if isinstance(query, JSONResponse):
                return query
            return await run(request, "playback_progress_get", "read",
                             lambda h: h.progress(query))
        req = await body_of(request, ProgressRequest)
        if isinstance(req, JSONResponse):
            return req
        return await run(request, "playback_progress", "write",
                         lambda h: h.upsert_progress(req))

    async def continue_watching(request: Request) -> JSONResponse:
        query = parse_query(request, ContinueWatchingQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "continue_watching", "read",
                         lambda h: h.continue_watching(query))

    async def events(request: Request) -> JSONResponse:
        if request.method == "GET":
            query = parse_query(request, EventsQuery)
            if isinstance(query, JSONResponse):
                return query
            return await run(request, "events_read", "read", lambda h: h.events(query))
        req = await body_of(request, LogEventsRequest)
        if isinstance(req, JSONResponse):
            return req
        return await run(request, "events_log", "write", lambda h: h.log_events(req))

    tag = "playback"
    sessions = PLAYBACK_PREFIX + "/sessions"
    one: dict[str, Any] = {"path": SessionPath, "tag": tag}
    return Starlette(routes=[
        api_route(sessions, start, Operation(
            "POST", "Start a playback session (returns the resume position)",
            operation_id="playback_start", body=StartSessionRequest, response=SessionResponse,
            scope="write", errors=(404,), tag=tag)),
        api_route(sessions + "/{session_id}", session, Operation(
            "GET", "One playback session", operation_id="playback_session",
            response=SessionResponse, scope="read", errors=(404,), **one)),
        api_route(sessions + "/{session_id}/heartbeat", heartbeat, Operation(
            "POST", "Report the position of an open session (pause/resume are logged)",
            operation_id="playback_heartbeat", body=HeartbeatRequest,
            response=SessionResponse, scope="write", errors=(404, 409, 410), **one)),
        api_route(sessions + "/{session_id}/stop", stop, Operation(
            "POST", "Stop a session: logs playback_complete or playback_abandon",
            operation_id="playback_stop", body=StopRequest, response=StopResponse,
            scope="write", errors=(404, 410), **one)),
        api_route(PLAYBACK_PREFIX + "/progress", progress, Operation(
            "POST", "Upsert a viewer's progress in a title (a logged viewing event)",
            operation_id="playback_progress", body=ProgressRequest, response=ProgressResponse,
            scope="write", errors=(404,), tag=tag), Operation(
            "GET", "A viewer's progress in a title (resume position)",
            operation_id="playback_progress_get", query=ProgressQuery,
            response=ProgressResponse, scope="read", errors=(404,), tag=tag)),
        api_route(PLAYBACK_PREFIX + "/continue-watching", continue_watching, Operation(
            "GET", "Titles started and not finished, most recent first",
            operation_id="continue_watching", query=ContinueWatchingQuery,
            response=ContinueWatchingResponse, scope="read", tag=tag)),
        api_route(EVENTS_PATH, events, Operation(
            "POST", "Append user-activity events (acknowledged once committed)",
            operation_id="events_log", body=LogEventsRequest, response=LogEventsResponse,
            scope="write", errors=(404,), tag="events"), Operation(
            "GET", "A user's logged events in storage order", operation_id="events_read",
            query=EventsQuery, response=EventsResponse, scope="read", tag="events")),
    ])


__all__ = ["EVENTS_PATH", "PLAYBACK_PREFIX", "playback_routes"]
