"""ASGI pieces of the service: validation-error bodies and the GET probes.

BentoML answers a request that fails pydantic validation with status 400 and
``{"error": "1 validation error for ...", "detail": [{"loc": [...], "msg": ...}]}``.
:class:`ValidationErrorBody` rewrites such bodies into SONA's error shape,
``{"error": "validation_error", "message": "limit: Input should be ...", "fields": [...],
"detail": [...]}``, so every 4xx names the offending field the same way. Non-JSON or
already-shaped bodies pass through untouched. :func:`parse_body` gives the Starlette routes
mounted next to the APIs (``experiments_http``, ``catalog_http``) the same error shape.

:func:`probes_app` serves ``GET /health`` and ``GET /ready`` (BentoML APIs are POST only).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sona.serving.routing import Operation, api_route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


def _location(loc: Any) -> str:
    parts = [str(p) for p in (loc or [])]
    return ".".join(parts) if parts else "body"


def shape_validation_error(body: dict[str, Any]) -> dict[str, Any] | None:
    """SONA's error body for a BentoML validation body, or None if it is not one."""
    detail = body.get("detail")
    if "message" in body or not isinstance(detail, list):
        return None
    fields, messages = [], []
    for err in detail:
        if not isinstance(err, dict):
            continue
        where = _location(err.get("loc"))
        fields.append(where)
        messages.append(f"{where}: {err.get('msg', 'invalid value')}")
    cleaned = [{k: v for k, v in e.items() if k != "url"} for e in detail if isinstance(e, dict)]
    return {"error": "validation_error", "message": "; ".join(messages) or "invalid request",
            "fields": fields, "detail": cleaned}


class ValidationErrorBody:
    """ASGI middleware: reshape 400 validation bodies (see module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message  # wait for the body before deciding
                return
            if held is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            data = b"".join(chunks)
            try:
                shaped = shape_validation_error(json.loads(data))
            except (ValueError, AttributeError, TypeError):
                shaped = None
            if shaped is not None:
                data = json.dumps(shaped).encode()
            headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": data, "more_body": False})

        await self.app(scope, receive, wrapped)


class RequestTimeout:
    """ASGI middleware: answer 504 when a request runs longer than ``timeout`` seconds.

    Replaces BentoML's ``traffic.timeout`` middleware, which never cancels its timer: each
    request left a 60 s ``TimerHandle`` and a ``Future`` alive, so at 2,000 requests per
    second the collector's oldest generation held 600,000 objects more and every full
    collection paused the worker for 100-300 ms (the p99 of a trivial ping; issue 12).
    Here the timer is cancelled as soon as the response has started.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout_s = timeout  # BentoML passes ``timeout=``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        # one future woken by whichever comes first: the response starting, the app
        # finishing or the timer (asyncio.wait over two futures cost ~3x as much, issue 12)
        woken = loop.create_future()
        state = [False, False]  # [response started, timed out before it started]

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        def expire() -> None:
            if not state[0]:
                state[1] = True
            wake()

        async def tracked(message: Message) -> None:
            if not state[0]:
                state[0] = True
                wake()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, tracked))
        task.add_done_callback(wake)
        timer = loop.call_later(self.timeout_s, expire)
        try:
            await woken
        finally:
            timer.cancel()
        if state[1] and task.cancel():
            body = json.dumps({"error": "timeout", "message": "not able to process the "
                               f"request in {self.timeout_s:g} seconds"}).encode()
            await send({"type": "http.response.start", "status": 504, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await task


def validation_body(exc: ValidationError) -> dict[str, Any]:
    """SONA's 400 body for a pydantic error: ``{error, message, fields}``."""
    fields = [_location(e["loc"]) for e in exc.errors()]
    messages = [f"{f}: {e['msg']}" for f, e in zip(fields, exc.errors(), strict=True)]
    return {"error": "validation_error", "message": "; ".join(messages), "fields": fields}


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The request's JSON body as ``model``, or the 400 response naming the bad fields."""
    raw = await request.body()
    try:
        return model.model_validate(json.loads(raw or b"null"))
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError
        if isinstance(exc, ValidationError):
            return JSONResponse(validation_body(exc), status_code=400)
        return JSONResponse({"error": "validation_error", "fields": ["body"],
                             "message": f"body: invalid JSON ({exc})"}, status_code=400)


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (list, tuple, set, frozenset):
        return True
    return any(_is_list(arg) for arg in get_args(annotation))


def parse_query(request: Request, model: type[M]) -> M | JSONResponse:
    """The request's query parameters as ``model``, or the 400 response naming the bad ones.

    Repeated parameters become lists when the model's field is a list (``?genre=a&genre=b``).
    """
    params: dict[str, Any] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        field = model.model_fields.get(name)
        many = field is not None and _is_list(field.annotation)
        params[name] = values if many else values[-1]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        return JSONResponse(validation_body(exc), status_code=400)


def probes_app(health: Callable[[], dict[str, Any]],
               ready: Callable[[], tuple[int, dict[str, Any]]],
               openapi: Callable[[], bytes]) -> Starlette:
    """A Starlette app with ``GET /health``, ``GET /ready`` and the OpenAPI document at
    ``GET /openapi.json`` and ``GET /docs.json`` (which shadows BentoML's partial one)."""
    async def health_route(_: Request) -> JSONResponse:
        return JSONResponse(health())

    async def ready_route(_: Request) -> JSONResponse:
        # the checks wait on databases (up to their timeout): off the event loop
        status, body = await run_in_threadpool(ready)
        return JSONResponse(body, status_code=status)

    async def document(_: Request) -> Response:
        return Response(openapi(), media_type="application/json")

    return Starlette(routes=[
        api_route("/health", health_route, Operation(
            "GET", "Liveness: service version and model status", tag="probes")),
        api_route("/ready", ready_route, Operation(
            "GET", "Readiness: 503 until model, database and warm-up are ready",
            errors=(503,), tag="probes")),
        api_route("/openapi.json", document, Operation(
            "GET", "This OpenAPI 3.1 document", operation_id="openapi", tag="probes")),
        api_route("/docs.json", document, Operation(
            "GET", "This OpenAPI 3.1 document (the path BentoML serves its own at)",
            operation_id="openapi_docs", tag="probes")),
    ])


__all__ = ["RequestTimeout", "ValidationErrorBody", "parse_body", "parse_query", "probes_app",
           "shape_validation_error", "validation_body"]
