"""Catalog, quality and webhook routes over HTTP (SPEC §3.5, §3.7, §4).

:func:`build_catalog_handler` wires a :class:`CatalogHandler` for the serving process: the
catalog database (default ``catalog.db`` next to the serving database), the content
encoder, an entity resolver loaded from the catalog and the webhook service whose
processor pushes events through the same pipeline. :func:`catalog_routes` is the Starlette
app ``serving/service.py`` mounts next to its APIs (BentoML APIs are POST-only and cannot
take path ids or raw bodies). Every route runs its handler method inside
``SonaApp.dispatch`` on a worker thread, so statuses, error bodies and request metrics are
those of every other endpoint; the API-key scope of each route is
:data:`~sona.serving.catalog_api.ENDPOINT_SCOPES`, and the key id, client address and user
agent go into the catalog audit rows.

Routes (scope): ``POST /api/v1/admin/catalog/content`` (admin, 201), ``GET|PATCH|DELETE
/api/v1/admin/catalog/content/{id}`` (admin), ``PUT .../content/{id}/availability``
(admin), ``GET /api/v1/quality/report?threshold=&limit=`` (read), ``POST
/api/v1/webhooks/{platform}`` (HMAC ``X-Hub-Signature-256``, 202), ``POST
/api/v1/webhooks/register`` (admin), ``GET /api/v1/webhooks/metrics|stats`` (admin),
``POST /api/v1/webhooks/process?limit=`` (admin: drain the queue through the pipeline),
``GET /api/v1/webhooks/dead-letters?limit=`` (admin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.catalog.store import Actor, CatalogStore
from sona.db import sqlite_url
from sona.ingest.pipeline import IndexUpdater, load_resolver
from sona.ingest.processor import EVENT_TYPES, EventProcessor
from sona.ingest.quality import QualityReport
from sona.ingest.resolution import ResolverConfig
from sona.ingest.webhooks import EventView, Receipt, Registration, WebhookConfig, WebhookService
from sona.serving.asgi import parse_body, parse_query
from sona.serving.auth import api_key_from_headers, require_scope
from sona.serving.catalog_api import (
    ENDPOINT_SCOPES,
    AvailabilityRequest,
    CatalogHandler,
    ContentResponse,
    CreateContentRequest,
    DeleteResponse,
    PatchContentRequest,
    RegisterWebhookRequest,
)
from sona.serving.routing import Operation, api_route

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

log = logging.getLogger(__name__)

CATALOG_PREFIX = "/api/v1/admin/catalog"
WEBHOOK_PREFIX = "/api/v1/webhooks"
#: request header carrying ``sha256=<hex HMAC-SHA256 of the body>``
SIGNATURE_HEADER = "x-hub-signature-256"


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    """Where the serving catalog lives and how written items are embedded and resolved."""

    # SQLAlchemy URL of the catalog; None: catalog.db in the folder of the serving database
    url: str | None = None
    # content encoder for "title + overview": "minilm" (loaded on the first write) or "none"
    encoder: Literal["minilm", "none"] = "minilm"
    # entity-resolution rules for webhook events, in order ("embedding" encodes every
    # catalog title at start-up, so it is off by default)
    resolver_rules: tuple[str, ...] = ("eidr", "external_id", "fuzzy_title")
    # webhook processing attempts before an event is dead-lettered
    webhook_max_attempts: int = 3


def catalog_url(config: CatalogConfig, database: str) -> str:
    """The catalog URL: ``config.url`` or ``catalog.db`` next to the serving ``database``."""
    if config.url:
        return config.url
    return sqlite_url(Path(database).resolve().parent / "catalog.db")


def build_catalog_handler(config: CatalogConfig, database: str, *,
                          on_index_update: IndexUpdater | None = None) -> CatalogHandler:
    """A :class:`CatalogHandler` with its store, encoder, resolver and webhook service.

    Args:
        config: catalog settings.
        database: the serving database path (the default catalog goes next to it).
        on_index_update: receives every vector upsert/removal (CRUD and webhook events).
    """
    encoder: Any = None
    if config.encoder == "minilm":
        from sona.embeddings import EncoderConfig, TextEncoder

        encoder = TextEncoder(EncoderConfig(cache_dir=None, show_progress=False))
    store = CatalogStore(catalog_url(config, database))
    resolver_encoder = encoder if "embedding" in config.resolver_rules else None
    resolver = load_resolver(store, ResolverConfig(rules=config.resolver_rules),
                             encoder=resolver_encoder)
    processor = EventProcessor(store, resolver, encoder=encoder, on_index_update=on_index_update)
    hooks = WebhookService(store, processor, config=WebhookConfig(
        max_attempts=config.webhook_max_attempts, url_prefix=WEBHOOK_PREFIX))
    log.info("catalog %s: %d items, encoder %s", store.url, store.count(), config.encoder)
    return CatalogHandler(store, encoder=encoder, on_index_update=on_index_update,
                          webhooks=hooks, resolver=resolver)


class QualityQuery(BaseModel):
    """``?threshold=&limit=`` of the quality report."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.6, ge=0.0, le=1.0, description="quality score cut-off")
    limit: int = Field(100, ge=0, le=10_000, description="most items listed")


class LimitQuery(BaseModel):
    """``?limit=`` of the webhook queue routes."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(100, ge=1, le=10_000, description="most events handled or listed")


class WebhookEvent(BaseModel):
    """A platform's webhook event; signed as raw bytes, so the handler parses it itself."""

    model_config = ConfigDict(extra="allow")
    event_type: str = Field(json_schema_extra={"enum": list(EVENT_TYPES)})
    data: dict[str, Any]


class DeadLetters(BaseModel):
    """Dead-lettered webhook events, newest first."""

    items: list[EventView]


Call = Callable[[CatalogHandler, Request, Actor | None], BaseModel | dict[str, Any] | list[Any]]


def catalog_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""
    async def run(request: Request, endpoint: str, call: Call, *,
                  created: int = 200) -> JSONResponse:
        app = get_app()
        scope = ENDPOINT_SCOPES[endpoint]
        headers = dict(request.headers)
        client = request.client.host if request.client else None

        def handler() -> BaseModel | dict[str, Any]:
            actor = None
            if scope is not None:
                key = require_scope(api_key_from_headers(headers), scope, app.auth)
                actor = Actor(user_id=key.actor, ip=client,
                              user_agent=headers.get("user-agent"))
            # a mutating handler method holds the catalog write lock itself (across workers)
            out = call(app.catalog, request, actor)
            if isinstance(out, list):
                return {"items": [o.model_dump(mode="json") if isinstance(o, BaseModel) else o
                                  for o in out]}
            return out

        status, body = await run_in_threadpool(app.dispatch, endpoint, handler)
        return JSONResponse(body, status_code=created if status == 200 else status)

    async def create(request: Request) -> JSONResponse:
        body = await parse_body(request, CreateContentRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "create_content", lambda h, _, actor: h.create_content(
            body, actor=actor), created=201)  # type: ignore[arg-type]

    async def content(request: Request) -> JSONResponse:
        key = request.path_params["content_id"]
        if request.method == "GET":
            return await run(request, "get_content", lambda h, _r, _a: h.get_content(key))
        if request.method == "DELETE":
            return await run(request, "delete_content",
                             lambda h, _, actor: h.delete_content(key, actor=actor))
        body = await parse_body(request, PatchContentRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "update_content", lambda h, _, actor: h.update_content(
            key, body, actor=actor))  # type: ignore[arg-type]

    async def availability(request: Request) -> JSONResponse:
        key = request.path_params["content_id"]
        body = await parse_body(request, AvailabilityRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "put_availability", lambda h, _, actor: h.put_availability(
            key, body, actor=actor))  # type: ignore[arg-type]

    async def quality(request: Request) -> JSONResponse:
        query = parse_query(request, QualityQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "quality_report", lambda h, _r, _a: h.quality_report(
            query.threshold, query.limit))

    async def receive(request: Request) -> JSONResponse:
        platform = request.path_params["platform"]
        raw = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        return await run(request, "receive_webhook", lambda h, _r, _a: h.receive_webhook(
            platform, raw, signature), created=202)

    async def register(request: Request) -> JSONResponse:
        body = await parse_body(request, RegisterWebhookRequest)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "register_webhook", lambda h, _, actor: h.register_webhook(
            body, actor=actor))  # type: ignore[arg-type]

    async def stats_route(request: Request) -> JSONResponse:
        return await run(request, "webhook_stats", lambda h, _r, _a: h.webhook_stats())

    async def process(request: Request) -> JSONResponse:
        query = parse_query(request, LimitQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "process_webhooks", lambda h, _r, _a: h.process_webhooks(
            query.limit))

    async def dead_letters(request: Request) -> JSONResponse:
        query = parse_query(request, LimitQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "dead_letters", lambda h, _r, _a: h.dead_letters(
            query.limit))

    # fixed webhook paths come before /webhooks/{platform}, which would match them too
    cat, hook = "catalog", "webhooks"
    stats = "Webhook queue depth per status and platform, intake counters"
    return Starlette(routes=[
        api_route(CATALOG_PREFIX + "/content", create, Operation(
            "POST", "Add a catalog item (embedded and indexed)", operation_id="create_content",
            body=CreateContentRequest, response=ContentResponse, status=201, scope="admin",
            errors=(409,), tag=cat)),
        api_route(CATALOG_PREFIX + "/content/{content_id}", content, Operation(
            "GET", "One catalog item", operation_id="get_content", response=ContentResponse,
            scope="admin", errors=(404,), tag=cat), Operation(
            "PATCH", "Change an item (re-embedded)", operation_id="update_content",
            body=PatchContentRequest, response=ContentResponse, scope="admin",
            errors=(404,), tag=cat), Operation(
            "DELETE", "Remove an item", operation_id="delete_content",
            response=DeleteResponse, scope="admin", errors=(404,), tag=cat)),
        api_route(CATALOG_PREFIX + "/content/{content_id}/availability", availability,
                  Operation("PUT", "Replace an item's availability on one platform",
                            operation_id="put_availability", body=AvailabilityRequest,
                            response=ContentResponse, scope="admin", errors=(404,), tag=cat)),
        api_route("/api/v1/quality/report", quality, Operation(
            "GET", "Items below a quality threshold, worst first", operation_id="quality_report",
            query=QualityQuery, response=QualityReport, scope="read", tag=cat)),
        api_route(WEBHOOK_PREFIX + "/register", register, Operation(
            "POST", "Register a platform's webhook secret", operation_id="register_webhook",
            body=RegisterWebhookRequest, response=Registration, scope="admin", tag=hook)),
        api_route(WEBHOOK_PREFIX + "/metrics", stats_route, Operation(
            "GET", stats, operation_id="webhook_metrics", scope="admin", tag=hook)),
        api_route(WEBHOOK_PREFIX + "/stats", stats_route, Operation(
            "GET", stats, operation_id="webhook_stats", scope="admin", tag=hook)),
        api_route(WEBHOOK_PREFIX + "/process", process, Operation(
            "POST", "Drain due events through the ingest pipeline",
            operation_id="process_webhooks", query=LimitQuery, scope="admin", errors=(503,),
            tag=hook)),
        api_route(WEBHOOK_PREFIX + "/dead-letters", dead_letters, Operation(
            "GET", "Dead-lettered events, newest first", operation_id="dead_letters",
            query=LimitQuery, response=DeadLetters, scope="admin", tag=hook)),
        api_route(WEBHOOK_PREFIX + "/{platform}", receive, Operation(
            "POST", "Receive a platform event (HMAC-signed body), queued for processing",
            operation_id="receive_webhook", body=WebhookEvent, response=Receipt, status=202,
            security="signature", errors=(404, 503), tag=hook)),
    ])


__all__ = [
    "CATALOG_PREFIX", "SIGNATURE_HEADER", "WEBHOOK_PREFIX", "CatalogConfig",
    "build_catalog_handler", "catalog_routes", "catalog_url",
]
