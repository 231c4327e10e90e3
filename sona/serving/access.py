"""Access control for every route, once: credentials on mutating routes and rate limits.

:class:`AccessControl` is ASGI middleware in front of every route of the service (the
BentoML APIs and the mounted Starlette apps alike), so a route added later is covered
without doing anything. Per HTTP request it:

1. reads the credential (``Authorization: Bearer <API key or access token>`` or
   ``X-API-Key``) and verifies it with the app's
   :class:`~sona.serving.identity.Authenticator` (cached: a dict lookup on the hot path);
   an invalid one is a **401** at once;
2. answers **401** when the route needs credentials and none came (:func:`needs_credentials`):
   every ``POST``/``PUT``/``PATCH``/``DELETE`` route except those in :data:`OPEN_ROUTES`
   (each with its reason) and, when ``auth.public_reads`` is on, the read-only routes
   (``GET`` and the ``POST`` routes in :data:`READ_ROUTES`). A method or path the service
   does not declare (:mod:`sona.serving.routing`) passes on, so the router answers its
   405 or 404 rather than a misleading 401;
3. takes a token from the caller's bucket (:mod:`sona.serving.ratelimit`): per API key
   (tier ``service``), per user (tier = role) or, without credentials, per client IP (tier
   ``anonymous``); login, register and refresh also draw from a per-IP bucket of their own.
   An empty bucket is a **429** with ``Retry-After`` (whole seconds, rounded up).

Which *scope* a route needs stays the route's business (``require_scope`` / ``dispatch``
answer 403); this layer only guarantees that nothing mutates anonymously and that nobody
exceeds their tier. Bodies are SONA's error shape ``{"error", "message", ...}``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from sona.serving.identity import Authenticator, Principal
from sona.serving.ratelimit import Buckets, Limit, RateLimitConfig, make_buckets

log = logging.getLogger(__name__)

AUTH_PREFIX = "/api/v1/auth"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: routes that never need credentials, any method: (method regex, path regex, why)
OPEN_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET|HEAD", r"/(health|ready|livez|healthz|readyz|metrics|docs\.json|openapi\.json|"
                 r"schema\.json|docs)",
     "probes and the API description: monitoring and clients must reach them unauthenticated"),
    ("GET|HEAD", r"/|/static_content/.*|/console/static/.*",
     "the console page and static files hold no data; the page asks for a key or token"),
    ("POST", AUTH_PREFIX + r"/(register|login|refresh)",
     "how credentials are obtained; refresh carries its refresh token in the body"),
    ("POST", r"/api/v1/webhooks/(?!register$|process$)[^/]+",
     "partner webhooks prove themselves with the HMAC X-Hub-Signature-256 of the body "
     "(checked by the route: 401 without a valid signature)"),
    ("POST", r"/api/v1/ping",
     "a no-op that reads and writes nothing: the service's throughput ceiling"),
)

#: POST routes that only read (POST because BentoML APIs take a JSON body): open when
#: ``auth.public_reads`` is on. Recommendations and search also log what they served
#: (exposures, query analytics): usage records of a read, kept for anonymous traffic too,
#: which the anonymous per-IP limit bounds. Search clicks are writes and need credentials.
READ_ROUTES: frozenset[str] = frozenset({
    "/api/v1/recommendations", "/api/v1/recommendations/batch",
    "/api/v1/recommendations/similar", "/api/v1/personalization/score",
    "/api/v1/search", "/api/v1/search/vector", "/api/v1/search/keyword",
})

_OPEN = [(re.compile(f"(?:{m})"), re.compile(f"(?:{p})"), why) for m, p, why in OPEN_ROUTES]


def open_reason(method: str, path: str) -> str | None:
    """Why ``method path`` needs no credentials ever, or None when it may."""
    for methods, paths, why in _OPEN:
        if methods.fullmatch(method) and paths.fullmatch(path):
            return why
    return None


def needs_credentials(method: str, path: str, *, public_reads: bool) -> bool:
    """Whether a request without credentials must be refused with 401."""
    if open_reason(method, path) is not None:
        return False
    if not public_reads:
        return True
    if method in _READ_METHODS:
        return False
    return path not in READ_ROUTES


def _credential(scope: Scope) -> str | None:
    auth = key = None
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == b"authorization":
            auth = bytes(value).decode("latin-1")
        elif lowered == b"x-api-key":
            key = bytes(value).decode("latin-1")
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (key or "").strip() or None


async def _reply(send: Send, status: int, body: dict[str, Any],
                 headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


class AccessControl:
    """ASGI middleware: 401 without credentials where needed, 429 over the rate limit.

    Args:
        app: the wrapped ASGI app.
        get_auth: the running app's :class:`Authenticator` (None before start-up: requests
            pass to the routes, which answer 503 themselves).
        public_reads: serve read-only routes without credentials.
        rate_limits: tiers, per-route limits and the bucket store.
        buckets: bucket store override (tests); default from ``rate_limits``.
    """

    def __init__(self, app: ASGIApp, *, get_auth: Callable[[], Authenticator | None],
                 public_reads: bool = True, rate_limits: RateLimitConfig | None = None,
                 buckets: Buckets | None = None,
                 declared: Callable[[], Iterable[tuple[str, str]]] | None = None) -> None:
        self.app = app
        self._declared_source = declared
        self._declared: list[tuple[str, re.Pattern[str]]] | None = None
        self.get_auth = get_auth
        self.public_reads = bool(public_reads)
        self.limits = rate_limits or RateLimitConfig()
        self.buckets = None if not self.limits.enabled else (buckets or make_buckets(
            self.limits))
        # (method, path) -> (is open, needs credentials): regexes run once per path
        self._decisions: dict[tuple[str, str], tuple[bool, bool]] = {}
        routes = self.limits.auth_routes
        self._route_limits: dict[str, tuple[str, tuple[Limit, ...]]] = {
            f"{AUTH_PREFIX}/{name}": (name, getattr(routes, name))
            for name in ("login", "register", "refresh")}

    def _policy(self, method: str, path: str) -> tuple[bool, bool]:
        decided = self._decisions.get((method, path))
        if decided is None:
            decided = (open_reason(method, path) is not None,
                       needs_credentials(method, path, public_reads=self.public_reads)
                       and self._is_declared(method, path))
            if len(self._decisions) < 50_000:  # paths with ids vary: keep the table bounded
                self._decisions[(method, path)] = decided
        return decided

    def _is_declared(self, method: str, path: str) -> bool:
        """Whether the service declares ``method`` on ``path`` (True without a table)."""
        if self._declared_source is None:
            return True
        if self._declared is None:
            try:
                table = list(self._declared_source())
            except Exception:  # an undeclared route: test_routing fails; here, stay strict
                log.exception("route table unavailable; every undeclared path needs "
                              "credentials")
                self._declared_source = None
                return True
            self._declared = [(m, compile_path(p)[0]) for m, p in table]
        return any(m == method and regex.match(path) for m, regex in self._declared)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        is_open, needs = self._policy(method, path)
        credential = _credential(scope)
        principal: Principal | None = None
        auth = self.get_auth()
        if credential is not None and auth is not None:
            principal = auth.verify(credential)
            if principal is None and not is_open:
                await _reply(send, 401, {
                    "error": "unauthorized",
                    "message": "invalid, revoked or expired API key or token"},
                    [(b"www-authenticate", b'Bearer error="invalid_token"')])
                return
        elif credential is None and needs:
            await _reply(send, 401, {
                "error": "unauthorized",
                "message": f"{method} {path} needs credentials: send 'Authorization: Bearer "
                           "<API key or access token>' or 'X-API-Key: sk_...'"},
                [(b"www-authenticate", b"Bearer")])
            return
        # probes, docs and static files are not counted
        if self.buckets is not None and not (is_open and method in _READ_METHODS):
            if await self._limited(scope, send, path, principal):
                return
        await self.app(scope, receive, send)

    async def _limited(self, scope: Scope, send: Send, path: str,
                       principal: Principal | None) -> bool:
        assert self.buckets is not None
        client = scope.get("client")
        ip = str(client[0]) if client else "unknown"
        if principal is not None:
            bucket, tier = principal.actor, principal.tier
        else:
            bucket, tier = f"ip:{ip}", "anonymous"
        wait = await self.buckets.take(bucket, self.limits.tiers.of(tier))
        route = self._route_limits.get(path) if scope["method"] == "POST" else None
        if wait == 0.0 and route is not None:
            name, limits = route
            wait = await self.buckets.take(f"{name}:ip:{ip}", limits)
            tier = f"{name} (per IP)"
        if wait == 0.0:
            return False
        retry = max(1, math.ceil(wait))
        await _reply(send, 429, {
            "error": "rate_limited",
            "message": f"rate limit of tier {tier!r} exceeded; retry in {retry} s",
            "tier": tier, "retry_after_s": retry},
            [(b"retry-after", str(retry).encode())])
        return True


__all__ = ["AUTH_PREFIX", "OPEN_ROUTES", "READ_ROUTES", "AccessControl", "needs_credentials",
           "open_reason"]
