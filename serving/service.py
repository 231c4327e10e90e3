"""SONA BentoML service: thin HTTP layer over ``sona.serving`` (STYLE.md §10.4).

Run with ``bentoml serve service:Sona --working-dir serving`` (``make serve``). Settings
come from the YAML named by ``$SONA_SERVING_CONFIG`` (:class:`sona.serving.ServingConfig`).
Each API method parses its pydantic body (BentoML validates it; failures become 400 with
the field named), then hands a plain-Python handler to ``SonaApp.dispatch``, which maps
errors to statuses in one place. Adding an endpoint = one method like those below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import bentoml
from bentoml._internal.server.http import traffic as _bentoml_traffic
from pydantic_core import to_json
from starlette.responses import Response

from sona.serving.access import AccessControl
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.asgi import RequestTimeout, ValidationErrorBody, probes_app
from sona.serving.audit_http import audit_routes
from sona.serving.auth_http import auth_routes
from sona.serving.catalog_http import catalog_routes
from sona.serving.console_http import console_routes
from sona.serving.experiments_api import (
    ConversionRequest,
    CreateExperimentRequest,
    EventsRequest,
    ExperimentRecommendationResponse,
)
from sona.serving.experiments_http import experiment_routes
from sona.serving.limits import RequestLimits
from sona.serving.playback_http import playback_routes
from sona.serving.process import exit_with_parent
from sona.serving.resilience import RetryAfter
from sona.serving.routing import declare, service_document, service_operations
from sona.serving.schemas import (
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    LoraTrainRequest,
    LoraTrainResponse,
    ProfileUpdateRequest,
    ProfileUpdateResponse,
    RecommendationRequest,
    ReloadRequest,
    ScoreRequest,
    ScoreResponse,
    SimilarRequest,
    SimilarResponse,
)
from sona.serving.search_api import ClickRequest, SearchRequest, SearchResponse
from sona.serving.search_http import search_routes
from sona.serving.sync_http import sync_routes

CONFIG = load_serving_config()

# BentoML builds its ``traffic.timeout`` middleware from this module attribute when the
# worker creates the app; its own never cancels the per-request timer (a 60 s TimerHandle
# and Future kept alive per request: full-GC pauses of 100-300 ms under load, issue 12).
# RequestTimeout keeps the same 504 behaviour and cancels the timer.
_bentoml_traffic.TimeoutMiddleware = RequestTimeout  # type: ignore[misc]
_running: list[SonaApp] = []  # the worker's app, for the GET probes mounted below


def _app() -> SonaApp:
    if not _running:
        raise RuntimeError("the SONA service has not started")
    return _running[0]


def _raise(exc: Exception) -> Any:
    raise exc


def _health() -> dict[str, Any]:
    return _app().health()


def _ready() -> tuple[int, dict[str, Any]]:
    return _app().ready() if _running else (503, {"status": "unhealthy", "checks": {}})


_document: list[bytes] = []  # the OpenAPI document, generated on its first request


def _openapi() -> bytes:
    """The service's OpenAPI 3.1 document (``sona.serving.routing``), built once."""
    if not _document:
        _document.append(to_json(service_document(Sona)))
    return _document[0]


@bentoml.service(
    name="sona",
    workers="cpu_count" if CONFIG.workers == 0 else CONFIG.workers,
    threads=CONFIG.threads,
    traffic={"timeout": 60},
    logging={"access": {"enabled": CONFIG.access_log}},
    # BentoML's OpenTelemetry middleware opens a span per request even at its default
    # sample rate 0 (nothing is ever exported): ~15% of a ping's CPU. Excluded unless
    # tracing is configured (issue 12 profile).
    # SONA's own exporter (tracing_export) turns it on too: an incoming traceparent is
    # honoured and SONA's request span nests under BentoML's
    tracing={} if CONFIG.tracing or CONFIG.tracing_export.exporter != "none"
    else {"excluded_urls": [".*"]},
)
@bentoml.asgi_app(probes_app(_health, _ready, _openapi), path="/")
@bentoml.asgi_app(experiment_routes(_app), path="/")
@bentoml.asgi_app(catalog_routes(_app), path="/")
@bentoml.asgi_app(search_routes(_app), path="/")
@bentoml.asgi_app(sync_routes(_app), path="/")  # sync REST + the WebSocket channel
@bentoml.asgi_app(playback_routes(_app), path="/")  # playback + the event log
@bentoml.asgi_app(auth_routes(_app), path="/")  # users: register, login, tokens, TOTP
@bentoml.asgi_app(audit_routes(_app), path="/")  # GET /api/v1/admin/audit
@bentoml.asgi_app(console_routes(_app), path="/")  # the console page at / and its JSON
class Sona:
    """SONA personalisation endpoints (SPEC §2.10) plus admin reload."""

    def __init__(self) -> None:
        self.app = SonaApp(CONFIG)
        _running.append(self.app)
        exit_with_parent()  # an orphaned worker (its arbiter killed) shuts itself down
        # BentoML looks each API method up per request through its descriptor, which
        # rebuilds the method's inspect.signature every time (~18% of a ping's CPU in the
        # issue 12 profile); the descriptor has no __set__, so a bound copy in the instance
        # dict is found first and the binding happens once
        cls = type(self)
        for name, attr in vars(cls).items():
            if callable(getattr(attr, "_local_call", None)):  # a bentoml.api method
                self.__dict__[name] = attr.__get__(self, cls)

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.app.close()

    def _reply(self, ctx: bentoml.Context, endpoint: str, handler: Callable[[], Any],
               scope: str | None = None, started: float | None = None) -> Any:
        headers = dict(ctx.request.headers) if scope is not None else None
        status, body = self.app.dispatch(endpoint, handler, headers=headers, scope=scope,
                                         started=started)
        ctx.response.status_code = status
        # a Response skips BentoML's output path, which rebuilds the ``dict`` output's JSON
        # schema (pydantic TypeAdapter) on every request to pick the media type
        return Response(to_json(body), status_code=status, media_type="application/json")

    # --- SONA API -------------------------------------------------------------------------

    # The three read endpoints below are ``async``: BentoML runs a sync API method on a
    # worker thread (a hand-off to and back from the event loop per request, ~1 ms under
    # load), while these take about a millisecond of GIL-bound numpy and ONNX work, so
    # they run on the event loop itself. Everything that may block (SQL writes, training,
    # search's encoder) stays sync.

    @bentoml.api(route="/api/v1/recommendations")
    @declare(response=ExperimentRecommendationResponse, errors=(404, 503), tag="recommendations",
             summary="A viewer's recommendations (logged as an exposure in a running A/B test)")
    async def recommendations(self, body: RecommendationRequest, /,
                              ctx: bentoml.Context) -> dict:
        # concurrent requests are ranked together (one Pipeline.rank call per batch, each
        # list the one it gets alone); the first of an idle period is ranked at once
        started = time.perf_counter()
        try:
            resp: Any = await self.app.recs_batcher.submit(body)
        except Exception as exc:  # noqa: BLE001 - dispatch maps it to its status
            failed = exc
            return self._reply(ctx, "recommendations", lambda: _raise(failed), started=started)
        return self._reply(ctx, "recommendations", lambda: resp, started=started)

    @bentoml.api(route="/api/v1/recommendations/batch")
    @declare(response=BatchRecommendationResponse, errors=(404, 503), tag="recommendations",
             summary="Recommendations for several viewers at once")
    def recommendations_batch(self, body: BatchRecommendationRequest, /,
                              ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "recommendations_batch", lambda: self.app.recs.batch(body))

    @bentoml.api(route="/api/v1/recommendations/similar")
    @declare(response=SimilarResponse, errors=(404, 503), tag="recommendations",
             summary="Items similar to one item")
    async def similar(self, body: SimilarRequest, /, ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "similar", lambda: self.app.recs.similar(body))

    @bentoml.api(route="/api/v1/personalization/score")
    @declare(response=ScoreResponse, errors=(404, 503), tag="recommendations",
             summary="The blended score of one item for one viewer, with its components")
    async def personalization_score(self, body: ScoreRequest, /,
                                    ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "personalization_score", lambda: self.app.recs.score(body))

    @bentoml.api(route="/api/v1/profile/update")
    @declare(response=ProfileUpdateResponse, scope="write", errors=(404, 503),
             tag="recommendations", summary="Store viewing events and update the preference vector")
    def profile_update(self, body: ProfileUpdateRequest, /, ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "profile_update", lambda: self.app.recs.update_profile(body),
                           scope="write")

    @bentoml.api(route="/api/v1/lora/train")
    @declare(response=LoraTrainResponse, scope="write", errors=(404, 503), tag="recommendations",
             summary="Train the viewer's LoRA adapter now")
    def lora_train(self, body: LoraTrainRequest, /, ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "lora_train", lambda: self.app.recs.train_lora(body),
                           scope="write")

    # --- A/B experiments (GET/PUT/PATCH/DELETE routes: sona.serving.experiments_http) --

    @bentoml.api(route="/api/v1/experiments")
    @declare(scope="admin", errors=(409,), tag="experiments",
             summary="Create a draft A/B experiment")
    def create_experiment(self, body: CreateExperimentRequest, /,
                          ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "experiments_create",
                           lambda: self.app.experiments.create(body), scope="admin")

    @bentoml.api(route="/api/v1/events")
    @declare(scope="write", errors=(404,), tag="experiments",
             summary="Record outcome events (one transaction)")
    def events(self, body: EventsRequest, /, ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "events", lambda: self.app.experiments.events(body),
                           scope="write")

    @bentoml.api(route="/api/v1/experiments/conversions")
    @declare(scope="write", errors=(404, 409), tag="experiments",
             summary="Record one conversion of a viewer in an experiment")
    def conversions(self, body: ConversionRequest, /, ctx: bentoml.Context) -> dict:
        return self._reply(ctx, "conversions",
                           lambda: self.app.experiments.conversion(body), scope="write")

    # --- search (GET/PUT/DELETE routes: sona.serving.search_http) ---------------------

    @bentoml.api(route="/api/v1/search")
    @declare(response=SearchResponse, errors=(404, 503), tag="search",
             summary="Hybrid search (keyword + vector, personalised)")
    async def search(self, body: SearchRequest, /, ctx: bentoml.Context) -> dict:
        return await self._search(ctx, "search", "hybrid", body, lambda h: h.search(body))

    async def _search(self, ctx: bentoml.Context, name: str,
                      mode: Literal["hybrid", "keyword", "vector"], body: SearchRequest,
                      call: Callable[[Any], Any]) -> Any:
        # ``async`` like the read endpoints above: a search whose query vector is cached is
        # ~1 ms of GIL-bound work and runs on the event loop; one that needs the encoder
        # (a new query), a user's profile or waits on an index update goes to a thread
        service = self.app.search

        def run() -> Any:
            return self._reply(ctx, name, lambda: call(service.handler))
        return run() if service.runs_inline(body, mode) else \
            await service.offload(run, CONFIG.threads)

    @bentoml.api(route="/api/v1/search/vector")
    @declare(response=SearchResponse, errors=(404, 503), tag="search",
             summary="Vector-only search (debug/eval)")
    async def search_vector(self, body: SearchRequest, /, ctx: bentoml.Context) -> dict:
        return await self._search(ctx, "search_vector", "vector", body,
                                  lambda h: h.search_vector(body))

    @bentoml.api(route="/api/v1/search/keyword")
    @declare(response=SearchResponse, errors=(404, 503), tag="search",
             summary="Keyword-only search (debug/eval)")
    async def search_keyword(self, body: SearchRequest, /, ctx: bentoml.Context) -> dict:
        return await self._search(ctx, "search_keyword", "keyword", body,
                                  lambda h: h.search_keyword(body))

    @bentoml.api(route="/api/v1/search/click")
    @declare(errors=(404,), tag="search", summary="Log a click on a search result",
             scope="read")
    def search_click(self, body: ClickRequest, /, ctx: bentoml.Context) -> dict:
        # a write (usage signal of a search): any credentials, a user's token included
        return self._reply(ctx, "search_click", lambda: self.app.search.store.click(body),
                           scope="read")

    # --- admin and benchmarking -----------------------------------------------------------

    @bentoml.api(route="/admin/reload")
    @declare(scope="admin", errors=(404, 409, 503), tag="admin",
             summary="Swap the served model version")
    def admin_reload(self, body: ReloadRequest, /, ctx: bentoml.Context) -> dict:
        headers = dict(ctx.request.headers)
        return self._reply(ctx, "admin_reload", lambda: self.app.reload(body, headers))

    @bentoml.api(route="/api/v1/ping")
    @declare(tag="admin", summary="Trivial endpoint: the throughput ceiling of this service")
    async def ping(self) -> dict:
        """Trivial endpoint: the throughput ceiling of this service for load tests.

        ``async`` and a ready Response: no thread-pool hand-off, no per-request schema.
        """
        return Response(b'{"ok":true}', media_type="application/json")


Sona.add_asgi_middleware(ValidationErrorBody)
# a 405's Allow lists what every app declares on the path, not only the answering router's
Sona.add_asgi_middleware(RequestLimits, max_body_bytes=CONFIG.max_body_bytes,
                         declared=lambda: [(d.operation.method, d.path)
                                           for d in service_operations(Sona)])
# every 503 (database down, no model, shutting down) tells clients when to come back
Sona.add_asgi_middleware(RetryAfter, seconds=CONFIG.resilience.retry_after_s)
# no mutating route without credentials, and rate limits, for every route (sona.serving.access)
# (undeclared methods and paths pass on to the router's 405/404)
Sona.add_asgi_middleware(AccessControl, get_auth=lambda: _running[0].auth if _running else None,
                         public_reads=CONFIG.auth.public_reads, rate_limits=CONFIG.rate_limits,
                         declared=lambda: [(d.operation.method, d.path)
                                           for d in service_operations(Sona)])
