"""Serving configuration and the application object the BentoML service delegates to.

:class:`SonaApp` wires the stores (profiles, adapters, API keys, audit log: one SQLite
file), the :class:`ModelStore` (champion from the MLflow registry, polled, or a pinned
version) and the handlers. :meth:`SonaApp.dispatch` is the one place where handler
outcomes become HTTP statuses: :class:`ApiError` keeps its status, unknown ids are 404,
other SONA/validation errors are 400, a database outage is 503 (``Retry-After`` added by
:class:`~sona.serving.resilience.RetryAfter`), anything else is a logged 500. A new
endpoint in ``serving/service.py`` is therefore one method calling ``dispatch`` with its
handler. ``dispatch`` also opens the request's OpenTelemetry span (:mod:`sona.tracing`; a
no-op unless ``tracing_export`` names an exporter) and counts requests in flight, which
:meth:`SonaApp.close` lets finish before it closes the stores.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import torch
from pydantic import BaseModel

from sona import __version__, tracing
from sona import config as sona_config
from sona.catalog.availability import AvailabilityIndex
from sona.db import sqlite_url
from sona.errors import ConfigError, SonaError, UnknownIdError
from sona.events import EventLogConfig
from sona.experiments.spec import TrackingConfig
from sona.ingest.pipeline import IndexUpdate, IndexUpdater
from sona.lora import SqlAdapterStore
from sona.playback import PlaybackConfig
from sona.profile import ProfileStore
from sona.serving.audit import AuditLog
from sona.serving.auth import KeyStore, api_key_from_headers, require_scope
from sona.serving.batching import MicroBatcher
from sona.serving.catalog_http import CatalogConfig, build_catalog_handler
from sona.serving.catalog_items import CatalogItemsFollower
from sona.serving.catalog_relay import CatalogRelay
from sona.serving.catalog_writes import CatalogWrites
from sona.serving.errors import ApiError
from sona.serving.experiments_api import ExperimentsConfig, ExperimentsHandler
from sona.serving.identity import Authenticator
from sona.serving.metrics import serving_metrics
from sona.serving.model_store import LoadedModel, ModelStore, registry_resolver
from sona.serving.personalization import Personalization, PersonalizationConfig
from sona.serving.playback_api import build_playback
from sona.serving.ratelimit import (
    RateLimitConfig,
    validate_rate_limits,
    warn_per_worker_limits,
)
from sona.serving.readiness import Check, database_check, run_checks
from sona.serving.recs_api import RecsConfig, RecsHandler
from sona.serving.resilience import CircuitBreaker, ResilienceConfig, is_database_outage
from sona.serving.schemas import RecommendationRequest, RecommendationResponse, ReloadRequest
from sona.serving.search_http import SearchServingConfig, build_search_service
from sona.serving.search_users import SearchUserVectors
from sona.serving.sync_http import record_signals
from sona.serving.tokens import AuthConfig, TokenService
from sona.serving.users import UserStore, check_role
from sona.serving.where_to_watch import WhereToWatchService
from sona.shared import SharedState
from sona.sync import SyncConfig, SyncService, SyncStore
from sona.tracing import TracingConfig

log = logging.getLogger(__name__)

#: environment variable naming the serving YAML (read through sona.config.env)
CONFIG_ENV = "SONA_SERVING_CONFIG"


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """Settings of the serving process (YAML named by ``SONA_SERVING_CONFIG``)."""

    # registered model name; bundles live in models_dir/<model_name>/<version>/
    model_name: str = "sona-recommender"
    # folder of exported bundles
    models_dir: str = "models"
    # pin a version; None follows the registry alias below
    version: str | None = None
    # registry alias to follow
    alias: str = "champion"
    # seconds between registry polls (0 = only POST /admin/reload swaps)
    poll_interval_s: float = 30.0
    # MLflow store holding the registry
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # SQLite file for profiles, adapters, API keys and the audit log
    database: str = "serving/sona.db"
    # intra-op threads per ONNX Runtime session
    onnx_threads: int = 1
    # intra-op threads of torch (the search query encoder) per worker; torch's default, one
    # per core, busy-waits against the other workers and requests under load (issue 12:
    # a cold search took 0.2-1 s with two workers instead of ~10 ms)
    torch_threads: int = 1
    # request threads of the BentoML worker
    threads: int = 4
    # BentoML worker processes; 0: one per core. Each worker holds the served pipeline, the
    # search index and its caches; what one worker writes reaches the others through
    # sona.shared (per-user versions, a cross-process lock for sync, a relay of
    # catalog changes, model swaps, experiment and credential changes)
    workers: int = 0
    # largest accepted request body, bytes (larger: 413 before the body is read)
    max_body_bytes: int = 1_048_576
    # BentoML access log lines per request
    access_log: bool = True
    # BentoML's per-request OpenTelemetry spans (off: its default sample rate exports none)
    tracing: bool = False
    # SONA's own spans (request, pipeline and search stages): exporter none/console/otlp;
    # any exporter also turns BentoML's HTTP middleware on, so an incoming traceparent is
    # honoured and SONA's request span nests under BentoML's
    tracing_export: TracingConfig = field(default_factory=TracingConfig)
    # circuit breakers, per-stage timeouts, /ready timeout, Retry-After, shutdown drain
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    # hybrid ranking knobs
    recs: RecsConfig = field(default_factory=RecsConfig)
    # profile / adapter behaviour
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    # A/B store: SQLite next to `database` unless a URL or $SONA_DB_URL is given
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    # catalog / webhook store: catalog.db next to `database` unless a URL is given
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    # search engine (saved or built from ML-100K at start-up), analytics and ranking store
    search: SearchServingConfig = field(default_factory=SearchServingConfig)
    # multi-device sync: devices and operations (sync.db next to `database` unless a URL)
    sync: SyncConfig = field(default_factory=SyncConfig)
    # append-only event log (events.db next to `database` unless a URL) and its rules
    events: EventLogConfig = field(default_factory=EventLogConfig)
    # playback sessions and progress (playback.db next to `database` unless a URL)
    playback: PlaybackConfig = field(default_factory=PlaybackConfig)
    # users, tokens (JWT) and whether read-only routes are open without credentials
    auth: AuthConfig = field(default_factory=AuthConfig)
    # token-bucket limits per API key, user and client IP (429 with Retry-After)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)


#: environment variable naming the folder relative paths are taken from (``sona serve``
#: sets it to the directory it was started in; BentoML itself runs inside ``serving/``)
ROOT_ENV = "SONA_SERVING_ROOT"


def load_serving_config(path: str | Path | None = None) -> ServingConfig:
    """Config from ``path``, else from the file named by ``$SONA_SERVING_CONFIG``, else defaults.

    Relative paths and relative ``sqlite:///`` URLs are made absolute against
    ``$SONA_SERVING_ROOT`` (else the repository root), because ``bentoml serve
    --working-dir serving`` runs the worker inside ``serving/``: without this,
    ``mlflow/mlflow.db`` would silently resolve to ``serving/mlflow/mlflow.db``.
    """
    source = path if path is not None else sona_config.env(CONFIG_ENV)
    config = ServingConfig() if not source else sona_config.load(source, ServingConfig)
    if config.workers < 0:
        raise ConfigError(f"workers: {config.workers} is negative; use 0 (one per core) or "
                          "a number of worker processes")
    try:
        validate_rate_limits(config.rate_limits)
        check_role(config.auth.default_role)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    root_env = sona_config.env(ROOT_ENV)
    return rebase_paths(config, Path(root_env) if root_env else _repo_root())


def _repo_root() -> Path:
    from sona.serving.process import REPO_ROOT

    return REPO_ROOT


# overloads: a str field stays a str, an optional one stays optional
@overload
def _abs_path(value: str, root: Path) -> str: ...
@overload
def _abs_path(value: str | None, root: Path) -> str | None: ...
def _abs_path(value: str | None, root: Path) -> str | None:
    if value is None or Path(value).is_absolute():
        return value
    return str((root / value).resolve())


@overload
def _abs_url(url: str, root: Path) -> str: ...
@overload
def _abs_url(url: str | None, root: Path) -> str | None: ...
def _abs_url(url: str | None, root: Path) -> str | None:
    prefix = "sqlite:///"
    if url is None or not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    rest = url[len(prefix):]
    if rest in {"", ":memory:"}:
        return url
    return prefix + str((root / rest).resolve())


def rebase_paths(config: ServingConfig, root: Path) -> ServingConfig:
    """``config`` with every relative file path and SQLite URL made absolute under ``root``."""
    from dataclasses import replace

    return replace(
        config,
        models_dir=_abs_path(config.models_dir, root),
        database=_abs_path(config.database, root),
        tracking=replace(config.tracking, uri=_abs_url(config.tracking.uri, root),
                         artifact_dir=_abs_path(config.tracking.artifact_dir, root)),
        experiments=replace(config.experiments, url=_abs_url(config.experiments.url, root),
                            data_dir=_abs_path(config.experiments.data_dir, root)),
        catalog=replace(config.catalog, url=_abs_url(config.catalog.url, root)),
        search=replace(config.search, engine_dir=_abs_path(config.search.engine_dir, root),
                       dataset=_abs_path(config.search.dataset, root),
                       cache_dir=_abs_path(config.search.cache_dir, root),
                       url=_abs_url(config.search.url, root)),
        sync=replace(config.sync, url=_abs_url(config.sync.url, root)),
        events=replace(config.events, url=_abs_url(config.events.url, root)),
        playback=replace(config.playback, url=_abs_url(config.playback.url, root)),
    )


class SonaApp:
    """Stores, model and handlers of one serving worker.

    Args:
        config: serving settings.
        start: load the initial model and start polling (False for tests of wiring).
    """

    def __init__(self, config: ServingConfig, *, start: bool = True) -> None:
        self.config = config
        torch.set_num_threads(config.torch_threads)
        url = sqlite_url(config.database)
        self.metrics = serving_metrics()
        self._traces = config.tracing_export.exporter != "none"
        if self._traces:
            tracing.configure(config.tracing_export)
        # requests in dispatch now; close() waits for them (graceful shutdown)
        self._inflight = 0
        self._closing = False
        self._drained = threading.Condition()
        res = config.resilience
        opened = self.metrics.breaker_opened
        self.model_breaker = CircuitBreaker("model", res.model_breaker,
                                            on_open=lambda n: opened.labels(n).inc())
        self.encoder_breaker = CircuitBreaker("search_encoder", res.encoder_breaker,
                                              on_open=lambda n: opened.labels(n).inc())
        # what the server's worker processes share: per-user versions, cross-process locks
        # and the relay that brings one worker's writes to the others' in-memory state
        self.shared = SharedState.for_database(config.database)
        # the workers start at once: one at a time creates the stores' tables, seeds an empty
        # catalog and builds + saves the search engine; the next finds them done (and loads
        # the saved engine) instead of racing on the same rows and files
        with self.shared.lock("startup"):
            # relay messages up to here announce commits the components read anyway
            head = self.shared.head()
            self._components(config, url, res)
            self.shared.skip_to(head)
            # catalog writes (admin API, webhook processing) hold one lock across workers
            # and first teach this worker's resolver every catalog commit published after
            # `head` (its own start-up seeding included): webhook events resolve onto what
            # any worker wrote instead of duplicating it
            self.catalog.writes = CatalogWrites(self.shared, self.catalog.store,
                                                self.catalog.resolver, after=head)
        if start:
            self.start()

    def _components(self, config: ServingConfig, url: str, res: ResilienceConfig) -> None:
        """Stores, handlers and services of ``__init__`` (under the start-up lock)."""
        # revocations in any worker (and `sona keys revoke`) bump the shared "auth" version
        self.keys = KeyStore(url, shared=self.shared)
        self.users = UserStore(url)
        self.tokens = TokenService(url, self.users, config.auth, shared=self.shared)
        # verifies API keys and user tokens for every scope check and the access middleware
        self.auth = Authenticator(self.keys, self.tokens, key_cache_s=config.auth.key_cache_s,
                                  shared=self.shared)
        warn_per_worker_limits(config.rate_limits, config.workers)
        self.audit = AuditLog(url)
        resolver = None if config.version is not None else registry_resolver(
            config.tracking, config.model_name, config.alias)
        # a swap in any worker (reload, promotion poll) is followed by every other worker
        self.store = ModelStore(config.models_dir, config.model_name, resolver=resolver,
                                onnx_threads=config.onnx_threads, on_swap=self._on_swap,
                                shared=self.shared)
        self.personalization = Personalization(ProfileStore(url), SqlAdapterStore(url),
                                               self.metrics, config.personalization,
                                               shared=self.shared)
        self.recs = RecsHandler(self.store, self.personalization, self.metrics, config.recs,
                                breaker=self.model_breaker, timeout_s=res.model_timeout_s)
        self.experiments = ExperimentsHandler.for_app(self)
        # concurrent /recommendations requests ranked together, one Pipeline.rank call per
        # batch (issue 12; the async endpoint awaits it on the event loop)
        self.recs_batcher: MicroBatcher[RecommendationRequest, RecommendationResponse] = \
            MicroBatcher(self.experiments.recommendations_many, max_batch=32)
        # vector upserts/removals from catalog writes and webhook events go to each listener
        self.index_listeners: list[IndexUpdater] = []
        self.catalog = build_catalog_handler(config.catalog, config.database,
                                             on_index_update=self._index_updated)
        # this worker's catalog commits and index updates go to the other workers, whose
        # are applied here through the same store listeners and index_listeners
        self.catalog_relay = CatalogRelay(self.shared, self.catalog.store, self.index_listeners)
        self.search = build_search_service(
            config.search, config.database, catalog=self.catalog.store,
            user_vectors=lambda engine: SearchUserVectors(
                engine, self.store, self.personalization,
                self.personalization.profiles,
                max_events=config.personalization.max_profile_events),
            encoder_breaker=self.encoder_breaker, encoder_timeout_s=res.encoder_timeout_s)
        # catalog writes and processed webhooks reach the live search index (issue 11)
        self.index_listeners.append(self.search.apply)
        # ... and the served pipeline's item space, as cold items (on a background thread);
        # every loaded version first gets the catalog's current items
        self.cold_items = CatalogItemsFollower(self.store, self.catalog.store)
        self.store.prepare = self.cold_items.prepare
        self.index_listeners.append(self.cold_items.apply)
        # where to watch: every item's offers in memory, following the catalog store's
        # writes (no SQL per request); results carry them, filters restrict to them
        self.where = WhereToWatchService(AvailabilityIndex.from_store(self.catalog.store))
        self.recs.where = self.where
        self.search.store.where = self.where
        self.sync = SyncService(
            SyncStore(config.sync.url or sqlite_url(Path(config.database).resolve().parent
                                                    / "sync.db")),
            config.sync, shared=self.shared,  # one stamp order and fan-out across workers
            signals=lambda user_id, events: record_signals(self, user_id, events))
        # playback and the event log: one event path into the log and the profiles
        self.playback = build_playback(self)
        # set once start-up work on other threads (search encoder load) is over
        self.warmed_up = threading.Event()

    def start(self) -> None:
        """Load the pinned or champion version, then poll the registry.

        Raises:
            SonaError: a pinned version cannot be loaded.
        """
        self.shared.start()
        threading.Thread(target=self._finish_warm_up, name="sona-warm-up", daemon=True).start()
        if self.config.version is not None:
            self.store.load(self.config.version)
            return
        try:
            version = self.store.resolve()
            if version is None:
                raise ConfigError(f"registered model {self.config.model_name!r} has no "
                                  f"{self.config.alias!r} alias yet")
            self.store.load(version)
        except Exception as exc:  # serve 503 + keep polling rather than refuse to start
            self.store.last_error = str(exc)
            log.error("no model loaded at start-up (%s); polling the registry", exc)
        self.store.start_polling(self.config.poll_interval_s)

    def _finish_warm_up(self) -> None:
        """Wait for the search encoder's load, then freeze the start-up heap; /ready is 503
        until this ends.

        The encoder load imports torch/transformers and holds the GIL for seconds, so
        requests admitted meanwhile stall (issue 12). ``gc.freeze`` moves the millions of
        objects those imports and the model create out of the collector's reach: without
        it each full collection walks them all, a pause of hundreds of milliseconds every
        few thousand requests (the p99 of a trivial ping was 300+ ms).
        """
        thread = self.search.warm_up_thread
        if thread is not None:
            thread.join()
        gc.collect()
        gc.freeze()
        self.warmed_up.set()

    def _on_swap(self, new: LoadedModel, old: LoadedModel | None) -> None:
        """After each swap in this worker, its own or one following another worker's (the
        store calls it in every worker): count it, drop this worker's cached user states;
        audit it once, in the worker that made it."""
        self.metrics.model_swaps.labels(new.name, new.version).inc()
        self.personalization.clear()
        if old is not None and not self.store.following:
            self.audit.record("model_swapped", "model", f"{new.name}/{new.version}",
                              details={"from": old.version, "to": new.version})

    def _index_updated(self, update: IndexUpdate) -> None:
        """A catalog write's index update: every ``index_listeners`` entry gets it, then
        the other workers' (:class:`~sona.serving.catalog_relay.CatalogRelay`)."""
        self.catalog_relay.index_updated(update)

    # --- dispatch ---------------------------------------------------------------------------

    def dispatch(self, endpoint: str, handler: Callable[[], BaseModel | Mapping[str, Any]], *,
                 headers: Mapping[str, str] | None = None, scope: str | None = None,
                 started: float | None = None) -> tuple[int, dict[str, Any]]:
        """Run ``handler`` (after an API-key check when ``scope`` is given).

        ``started``: the request's ``time.perf_counter()`` when its work began before this
        call (a micro-batched ranking), for the latency metric.

        Returns:
            ``(HTTP status, JSON body)``; 503 ``shutting_down`` once :meth:`close` began.
        """
        start = time.perf_counter() if started is None else started
        with self._drained:
            closing = self._closing
            if not closing:
                self._inflight += 1
        if closing:
            status, body = 503, {"error": "shutting_down",
                                 "message": "the server is shutting down; retry shortly"}
        else:
            try:
                with tracing.span("sona.request") as span:
                    status, body = self._handle(endpoint, handler, headers, scope)
                    if span.is_recording():
                        span.set_attribute("sona.endpoint", endpoint)
                        span.set_attribute("http.response.status_code", status)
            finally:
                with self._drained:
                    self._inflight -= 1
                    if self._inflight == 0:
                        self._drained.notify_all()
        self.metrics.observe_request(endpoint, status, time.perf_counter() - start)
        return status, body

    def _handle(self, endpoint: str, handler: Callable[[], BaseModel | Mapping[str, Any]],
                headers: Mapping[str, str] | None,
                scope: str | None) -> tuple[int, dict[str, Any]]:
        try:
            if scope is not None:
                require_scope(api_key_from_headers(headers or {}), scope, self.auth)
            result = handler()
            status = 200
            body = result.model_dump(mode="json") if isinstance(result, BaseModel) \
                else dict(result)
        except ApiError as exc:
            status, body = exc.status, exc.to_body()
        except UnknownIdError as exc:
            status, body = 404, {"error": "not_found", "message": str(exc)}
        except (SonaError, ValueError) as exc:
            status, body = 400, {"error": "bad_request", "message": str(exc)}
        except Exception as exc:
            if is_database_outage(exc):  # not a bug: the client should come back later
                log.warning("database unavailable in %s: %s", endpoint, exc)
                self.metrics.database_unavailable.labels(endpoint).inc()
                return 503, {"error": "database_unavailable",
                             "message": "a database is unavailable; retry later",
                             "retry_after_s": self.config.resilience.retry_after_s}
            log.exception("unhandled error in %s", endpoint)  # a bug: never leak internals
            status, body = 500, {"error": "internal_error",
                                 "message": "unexpected server error; see the server log"}
        return status, body

    # --- admin ------------------------------------------------------------------------------

    def reload(self, req: ReloadRequest, headers: Mapping[str, str]) -> dict[str, Any]:
        """``POST /admin/reload`` (admin scope): swap to a version in the background."""
        key = require_scope(api_key_from_headers(headers), "admin", self.auth)
        outcome = self.store.reload(req.version, wait=req.wait)
        self.audit.record("admin_action", "model", self.config.model_name,
                          details={"operation": "reload", **outcome}, user_id=key.actor)
        return outcome

    def health(self) -> dict[str, Any]:
        """``GET /health`` body."""
        return self.recs.health(__version__)

    def ready(self) -> tuple[int, dict[str, Any]]:
        """``GET /ready``: every component checked within ``resilience.ready_timeout_s``.

        503 when a required component is unhealthy: the model (loaded; its breaker open
        is ``degraded``: popularity lists are served), start-up warm-up, the serving
        database (profiles, adapters, keys, audit), the catalog, experiments, sync and
        search analytics databases, and the search engine. The query encoder is optional:
        when it fails search answers keyword-only, so it is ``degraded``, never 503.
        """
        checks: dict[str, Check] = {
            "model": self._model_check, "warm_up": self._warm_up_check,
            "database": database_check(self.personalization.profiles.engine),
            "catalog_database": database_check(self.catalog.store.engine),
            "experiments_database": database_check(self.experiments.repo.engine),
            "sync_database": database_check(self.sync.store.engine),
            "search_analytics_database": database_check(
                self.search.store.analytics.engine),
            "events_database": database_check(self.playback.log.engine),
            "playback_database": database_check(self.playback.playback.store.engine),
            "search_engine": self._search_check, "search_encoder": self._encoder_check}
        return run_checks(checks, required=set(checks) - {"search_encoder"},
                          timeout_s=self.config.resilience.ready_timeout_s)

    def _model_check(self) -> dict[str, Any]:
        body: dict[str, Any] = {**self.store.status(), "breaker": self.model_breaker.status()}
        if not self.store.ready:
            return {**body, "status": "unhealthy"}
        # degraded too when this worker failed to follow another worker's swap (behind)
        return {**body, "status": "healthy" if self.model_breaker.state == "closed"
                and self.store.behind is None else "degraded"}

    def _warm_up_check(self) -> dict[str, Any]:
        return {"status": "healthy" if self.warmed_up.is_set() else "unhealthy"}

    def _search_check(self) -> dict[str, Any]:
        if self.search.error is not None:
            return {"status": "unhealthy", "error": self.search.error}
        documents = len(self.search.store.engine)
        return {"status": "healthy" if documents else "unhealthy", "documents": documents,
                "source": self.search.source}

    def _encoder_check(self) -> dict[str, Any]:
        handler = self.search.store
        breaker = self.encoder_breaker
        if self.search.error is not None or handler.engine.encoder is None:
            return {"status": "unhealthy", "error": "no search engine or encoder"}
        # not loaded yet is healthy: the first query (or the warm-up thread) loads it
        return {"status": "healthy" if breaker.state == "closed" else "degraded",
                "loaded": handler.encoder_loaded, "breaker": breaker.status()}

    def close(self) -> None:
        """Drain, then stop polling and training, close the stores and flush the spans.

        New requests get 503 ``shutting_down`` at once; requests in flight get up to
        ``resilience.drain_timeout_s`` to finish (their writes land before the stores
        close); background LoRA trainings are waited for; buffered spans are exported.
        """
        with self._drained:
            self._closing = True
            drained = self._drained.wait_for(lambda: self._inflight == 0,
                                             timeout=self.config.resilience.drain_timeout_s)
            if not drained:
                log.warning("closing with %d request(s) still in flight after %g s",
                            self._inflight, self.config.resilience.drain_timeout_s)
        self.store.stop()
        self.personalization.shutdown()
        self.experiments.close()
        self.catalog_relay.close()
        self.cold_items.close()
        self.catalog.store.close()
        self.search.close()
        self.sync.store.close()
        self.playback.close()
        self.shared.close()
        if self._traces:
            tracing.shutdown()


__all__ = ["CONFIG_ENV", "ServingConfig", "SonaApp", "load_serving_config"]
