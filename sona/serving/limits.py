"""Request limits as ASGI middleware: body size (413), content type (415), method (405).

Checked before any route sees the request (issue 13: a 50 MB JSON body was read and parsed
before validation rejected it; ``multipart/form-data`` without a boundary answered 500):

- **413** when ``Content-Length`` exceeds ``max_body_bytes``, answered at once, without
  reading a byte of the body; a body without ``Content-Length`` (chunked) is buffered only
  up to the limit, then refused, else replayed to the route;
- **415** when a request with a body is not JSON: every SONA route takes JSON
  (``application/json`` or a ``+json`` type);
- **405** stays 405, but a plain-text 405 from a router becomes the JSON error body every
  other error has; likewise a plain-text **404** (no route, no file), so every error answer
  has the documented body (``sona.serving.routing``). The 405's ``Allow`` lists every method
  the route table declares on the path: one path can be served by several apps (``POST
  /api/v1/experiments`` a BentoML API, ``GET`` a mounted route), and the router that answers
  405 knows only its own.

Bodies are the :class:`~sona.serving.errors.ApiError` shape ``{"error", "message", ...}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: methods whose requests carry a body worth checking
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: the order of methods in an ``Allow`` header
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


_LIMIT_HEADERS = {b"content-length": 0, b"transfer-encoding": 1, b"content-type": 2}


def _headers(scope: Scope) -> list[str | None]:
    """``[Content-Length, Transfer-Encoding, Content-Type]``, the first of each (None when
    absent), in one pass over the headers."""
    found: list[str | None] = [None, None, None]
    for key, value in scope.get("headers", ()):
        slot = _LIMIT_HEADERS.get(key.lower())
        if slot is not None and found[slot] is None:
            found[slot] = bytes(value).decode("latin-1")
    return found


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


async def _reply(send: Send, status: int, body: dict[str, Any],
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


class RequestLimits:
    """ASGI middleware enforcing body size, JSON content type and JSON 405 bodies.

    Args:
        app: the wrapped ASGI app.
        max_body_bytes: largest accepted request body, bytes.
        declared: the service's ``(method, path)`` declarations (read once, on the first
            405); None: a 405 keeps the answering router's ``Allow``.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int,
                 declared: Callable[[], Iterable[tuple[str, str]]] | None = None) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self._declared_source = declared
        self._declared: list[tuple[str, str, re.Pattern[str]]] | None = None

    def allowed(self, path: str) -> list[str]:
        """Every method declared on ``path`` (``HEAD`` with ``GET``); empty without a table."""
        if self._declared_source is None:
            return []
        if self._declared is None:
            self._declared = [(m.upper(), p, compile_path(p)[0])
                              for m, p in self._declared_source()]
        # a literal path wins over a template it also fits (OpenAPI's rule): /webhooks/stats
        # is its own resource, not /webhooks/{platform}
        literal = {m for m, p, _ in self._declared if p == path}
        found = literal or {m for m, _, regex in self._declared if regex.match(path)}
        if "GET" in found:
            found.add("HEAD")
        return [m for m in _METHOD_ORDER if m in found]

    def _too_large(self, size: str) -> dict[str, Any]:
        return {"error": "payload_too_large",
                "message": f"request body is {size}; the limit is {self.max_body_bytes} bytes",
                "max_body_bytes": self.max_body_bytes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, encoding, content_type = _headers(scope)
        chunked = "chunked" in (encoding or "").lower()
        if length is not None:
            if not length.strip().isdigit():
                await _reply(send, 400, {"error": "bad_request",
                                         "message": f"invalid Content-Length {length!r}"})
                return
            if int(length) > self.max_body_bytes:
                await _reply(send, 413, self._too_large(f"{int(length)} bytes"))
                return
        has_body = chunked or (length is not None and int(length) > 0)
        # a declared non-JSON type is refused even without a body: BentoML would try to
        # parse e.g. multipart/form-data without a boundary and answer 500 (issue 13)
        if scope["method"] in _BODY_METHODS and (has_body or content_type):
            content_type = content_type or ""
            if not _is_json(content_type):
                await _reply(send, 415, {
                    "error": "unsupported_media_type",
                    "message": f"content type {content_type or '(none)'!r} is not accepted; "
                               "send application/json", "accepted": ["application/json"]})
                return
        if chunked and length is None:
            buffered = await self._buffer(receive)
            if buffered is None:
                await _reply(send, 413, self._too_large(
                    f"over {self.max_body_bytes} bytes (chunked)"))
                return
            receive = _replay(buffered, receive)
        await self.app(scope, receive, _json_405(send, lambda: self.allowed(scope["path"])))

    async def _buffer(self, receive: Receive) -> list[Message] | None:
        """The body messages, or None once they exceed the limit (nothing more is read)."""
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            total += len(message.get("body", b""))
            if total > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _json_405(send: Send, declared: Callable[[], list[str]]) -> Send:
    """A ``send`` that turns a non-JSON 404 or 405 response into the JSON error body, the
    405's ``Allow`` into the ``declared`` methods when there are any."""
    state: dict[str, Any] = {"rewrite": False}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (404, 405):
            headers = list(message.get("headers", []))
            types = [v for k, v in headers if k.lower() == b"content-type"]
            if (not types or not _is_json(bytes(types[0]).decode("latin-1"))) \
                    and message["status"] == 404:
                state["rewrite"] = True
                await _reply(send, 404, {"error": "not_found",
                                         "message": "no such route or file"})
                return
            if not types or not _is_json(bytes(types[0]).decode("latin-1")):
                allow = [(k, v) for k, v in headers if k.lower() == b"allow"]
                methods = ", ".join(bytes(v).decode("latin-1") for _, v in allow)
                if listed := declared():
                    methods = ", ".join(listed)
                    allow = [(b"allow", methods.encode("latin-1"))]
                state["rewrite"] = True
                await _reply(send, 405, {
                    "error": "method_not_allowed",
                    "message": "method not allowed on this route"
                               + (f"; allowed: {methods}" if methods else ""),
                    "allowed": [m.strip() for m in methods.split(",") if m.strip()]}, allow)
                return
        if state["rewrite"]:
            return  # the router's plain-text body was replaced above
        await send(message)

    return wrapped


__all__ = ["RequestLimits"]
