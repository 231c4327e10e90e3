"""HTTP and WebSocket routes of the sync service (``sona.sync``).

Mounted by ``serving/service.py`` next to the APIs, like the catalog and experiment routes;
each route parses its pydantic body or query, then runs the :class:`~sona.sync.SyncService`
method inside ``SonaApp.dispatch`` on a worker thread, so statuses, error bodies, API-key
scopes and request metrics are those of every other endpoint. A
:class:`~sona.sync.SyncError` keeps its status (404 unknown device, 403 revoked device,
400 bad operation) and names the offending fields.

Routes (scope): ``POST /api/v1/sync/devices`` (write) register a device;
``GET /api/v1/sync/devices?user_id=`` (read) list them; ``DELETE
/api/v1/sync/devices/{device_id}?user_id=`` (write) revoke one; ``POST /api/v1/sync/push``
(write) store operations, acknowledged once durable; ``GET
/api/v1/sync/pull?user_id=&device_id=&since=&limit=`` (read) operations stored after a
cursor; ``GET /api/v1/sync/state?user_id=`` (read) the merged watchlist, progress and
settings; ``WS /api/v1/sync/ws?user_id=&device_id=`` (read) the channel on which the
server sends ``{"type": "ops", "ops": [...]}`` for each push of the user's other devices
(``{"type": "hello"}`` first, ``{"type": "revoked"}`` before closing a revoked device).
With several worker processes a channel lives in one of them and still receives the pushes
and the revocation answered by the others (the sync service relays them after the commit,
see :mod:`sona.sync.service`); any worker may answer any route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sona.profile import ViewingEvent
from sona.serving.asgi import parse_body, parse_query, validation_body
from sona.serving.auth import api_key_from_headers, require_scope
from sona.serving.errors import ApiError, service_call
from sona.serving.routing import Operation, api_route
from sona.serving.schemas import ProfileUpdateRequest, ViewingEventIn
from sona.sync.schemas import PullRequest, PushRequest, RegisterDeviceRequest, UserId

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

log = logging.getLogger(__name__)

PREFIX = "/api/v1/sync"
T = TypeVar("T")


class UserQuery(BaseModel):
    """``?user_id=`` of the listing routes."""

    model_config = {"extra": "forbid"}
    user_id: UserId


class ChannelQuery(BaseModel):
    """``?user_id=&device_id=`` of the WebSocket channel."""

    model_config = {"extra": "forbid"}
    user_id: UserId
    device_id: str


#: a sync-service call with its SyncError as the matching ApiError
sync_call = service_call


def record_signals(app: SonaApp, user_id: str, events: list[ViewingEvent]) -> None:
    """The sync service's signal sink: viewing events through ``POST /api/v1/profile/update``.

    The handler of that endpoint stores the events and updates the preference vector, so
    watchlist adds and progress reach the recommender exactly as playback does. Titles the
    served model does not know (e.g. catalog-only items) are left out; without a loaded
    model nothing is recorded (the operations themselves are stored either way).
    """
    if not app.store.ready:
        log.warning("no model loaded: %d sync signal(s) of %s not recorded", len(events),
                    user_id)
        return
    model = app.store.current
    idx = model.items.numbers([e.content_id for e in events], missing="negative")
    kept = [e for e, i in zip(events, idx, strict=True) if i >= 0]
    for start in range(0, len(kept), 1000):
        app.recs.update_profile(ProfileUpdateRequest(user_id=user_id, signup_genres=None,
                                                     viewing_events=[
            ViewingEventIn(content_id=e.content_id, completion_rate=e.completion_rate,
                           timestamp=datetime.fromtimestamp(e.timestamp, UTC),
                           is_rewatch=e.is_rewatch, rating=e.rating, dismissed=e.dismissed)
            for e in kept[start:start + 1000]]))


def sync_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""

    async def run(request: Request, endpoint: str, scope: str,
                  call: Callable[[SonaApp], Any]) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(
            app.dispatch, endpoint, lambda: sync_call(lambda: call(app)),
            headers=dict(request.headers), scope=scope)
        return JSONResponse(body, status_code=status)

    async def devices(request: Request) -> JSONResponse:
        if request.method == "GET":
            query = parse_query(request, UserQuery)
            if isinstance(query, JSONResponse):
                return query
            return await run(request, "sync_devices_list", "read", lambda app: {
                "user_id": query.user_id,
                "devices": [d.to_dict() for d in app.sync.devices(query.user_id)]})
        body = await parse_body(request, RegisterDeviceRequest)
        if isinstance(body, JSONResponse):
            return body
        req: RegisterDeviceRequest = body  # type: ignore[assignment]
        return await run(request, "sync_devices_register", "write", lambda app: app.sync
                         .register_device(req.user_id, req.device_id, name=req.name,
                                          device_type=req.device_type).to_dict())

    async def revoke(request: Request) -> JSONResponse:
        query = parse_query(request, UserQuery)
        if isinstance(query, JSONResponse):
            return query
        device_id = request.path_params["device_id"]
        return await run(request, "sync_devices_revoke", "write", lambda app: app.sync
                         .revoke_device(query.user_id, device_id).to_dict())

    async def push(request: Request) -> JSONResponse:
        body = await parse_body(request, PushRequest)
        if isinstance(body, JSONResponse):
            return body
        req: PushRequest = body  # type: ignore[assignment]
        ops = [op.to_operation() for op in req.ops]
        return await run(request, "sync_push", "write", lambda app: app.sync
                         .push(req.user_id, req.device_id, ops).to_dict())

    async def pull(request: Request) -> JSONResponse:
        query = parse_query(request, PullRequest)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "sync_pull", "read", lambda app: app.sync.pull(
            query.user_id, query.device_id, query.since, query.limit).to_dict())

    async def state(request: Request) -> JSONResponse:
        query = parse_query(request, UserQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "sync_state", "read", lambda app: {
            "user_id": query.user_id, **app.sync.document(query.user_id).to_dict()})

    async def channel(ws: WebSocket) -> None:
        app = get_app()
        try:
            query = ChannelQuery.model_validate(dict(ws.query_params))
            await run_in_threadpool(lambda: require_scope(
                api_key_from_headers(dict(ws.headers)), "read", app.auth))
            await run_in_threadpool(lambda: sync_call(
                lambda: app.sync.check_device(query.user_id, query.device_id)))
        except ValidationError as exc:
            await ws.close(code=4400, reason=validation_body(exc)["message"][:120])
            return
        except ApiError as exc:  # 401/403/404 as WebSocket close codes 4401/4403/4404
            await ws.close(code=4000 + exc.status, reason=exc.message[:120])
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def deliver(message: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(outbox.put_nowait, message)

        unsubscribe = app.sync.subscribe(query.user_id, query.device_id, deliver)
        receiver: asyncio.Future[str] | None = None
        try:
            await ws.send_json({"type": "hello", "user_id": query.user_id,
                                "device_id": query.device_id})
            receiver = asyncio.ensure_future(ws.receive_text())
            while True:
                sender = asyncio.ensure_future(outbox.get())
                done, _ = await asyncio.wait({sender, receiver},
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:  # the device closed, or sent a ping
                    sender.cancel()
                    if receiver.exception() is not None:
                        return
                    await ws.send_json({"type": "pong"})
                    receiver = asyncio.ensure_future(ws.receive_text())
                    continue
                message = sender.result()
                await ws.send_json(message)
                if message.get("type") == "revoked":
                    receiver.cancel()
                    await ws.close(code=4403, reason="device revoked")
                    return
        except WebSocketDisconnect:
            return
        finally:
            unsubscribe()
            if receiver is not None:
                with contextlib.suppress(Exception):
                    receiver.cancel()

    tag = "sync"
    return Starlette(routes=[
        api_route(PREFIX + "/devices", devices, Operation(
            "GET", "A viewer's devices", operation_id="sync_devices_list", query=UserQuery,
            scope="read", tag=tag), Operation(
            "POST", "Register a device (its id generated when absent)",
            operation_id="sync_devices_register", body=RegisterDeviceRequest, scope="write",
            errors=(403, 409), tag=tag)),
        api_route(PREFIX + "/devices/{device_id}", revoke, Operation(
            "DELETE", "Revoke a device", operation_id="sync_devices_revoke", query=UserQuery,
            scope="write", errors=(404,), tag=tag)),
        api_route(PREFIX + "/push", push, Operation(
            "POST", "Store a device's operations (acknowledged once durable)",
            operation_id="sync_push", body=PushRequest, scope="write", errors=(404,), tag=tag)),
        api_route(PREFIX + "/pull", pull, Operation(
            "GET", "Operations stored after a cursor", operation_id="sync_pull",
            query=PullRequest, scope="read", errors=(404,), tag=tag)),
        api_route(PREFIX + "/state", state, Operation(
            "GET", "The merged watchlist, progress and settings", operation_id="sync_state",
            query=UserQuery, scope="read", tag=tag)),
        WebSocketRoute(PREFIX + "/ws", channel),
    ])


__all__ = ["PREFIX", "record_signals", "sync_call", "sync_routes"]
