"""Search over HTTP (SPEC §3.8): the engine the serving process builds, and its GET/PUT routes.

:func:`build_search_service` runs at start-up. It loads the saved engine
(:func:`~sona.search.engine.load_engine`) from ``search.engine_dir`` (default
``search_engine/`` next to the serving database) or, when there is none, builds one from
the catalog store (:mod:`sona.catalog`: the MovieLens seeds, whose ids are the MovieLens
item ids, plus feed-only and admin-created items) and saves it, logging which happened and
how long it took. An empty catalog is first seeded from the ML-100K files in
``search.dataset`` (:mod:`sona.ingest.movielens`, what ``sona ingest run`` does first).
Catalog writes and processed webhooks reach the live engine through
:meth:`SearchService.apply` (an ``index_listeners`` entry of the app): the written items
are re-read from the catalog, embedded and applied to the live indexes in place (only the
written items are indexed: :meth:`~sona.search.engine.SearchEngine.update`). With
``encoder: minilm`` the document vectors come from the MiniLM embedding cache (about a
second for ML-100K); ``encoder: tfidf`` fits TF-IDF/LSA instead (no model load; such an
engine cannot be saved, so it is rebuilt at every start). The query encoder is warmed up on
a background thread so the first search does not pay the model load. If the engine cannot
be built, the error is logged and the engine-backed endpoints answer 503 with it, while the
rest of the service runs. Search analytics and ranking versions live in
``search_analytics.db`` next to the serving database unless ``search.url`` is given.

``serving/service.py`` declares the POST endpoints (search, vector, keyword, click) as
BentoML APIs and mounts :func:`search_routes` for the rest (BentoML APIs are POST-only and
take no path parameters). Each route runs its :class:`SearchHandler` method inside
``SonaApp.dispatch`` on a worker thread, so statuses, error bodies, API-key scopes and
request metrics are those of every other endpoint.

Routes (scope): ``GET /api/v1/search/autocomplete?q=&limit=`` (-), ``GET
/api/v1/analytics?period=&limit=`` (read), ``GET|PUT /api/v1/admin/search/ranking``
(read|admin), ``GET /api/v1/admin/search/ranking/variants`` (read), ``GET|PUT|DELETE
/api/v1/admin/search/ranking/variants/{name}`` (read|admin|admin), ``GET
/api/v1/admin/search/ranking/history/{version}`` (read).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.to_thread
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.catalog.store import CatalogStore
from sona.db import sqlite_url
from sona.embeddings import EncoderConfig, TextEncoder, TfidfEncoder
from sona.ingest.movielens import catalog_documents
from sona.ingest.pipeline import IndexUpdate
from sona.search.analytics import DB_NAME, PERIODS, SearchAnalytics
from sona.search.documents import documents_from_items
from sona.search.engine import SearchConfig, SearchEngine, load_engine, save_engine
from sona.search.faiss_index import FaissIndexConfig
from sona.search.ranking_store import RankingStore
from sona.serving.asgi import parse_body, parse_query
from sona.serving.batching import ThreadBatcher
from sona.serving.errors import ApiError
from sona.serving.process import REPO_ROOT
from sona.serving.resilience import CircuitBreaker
from sona.serving.routing import Operation, api_route
from sona.serving.search_api import (
    AutocompleteResponse,
    RankingVariantModel,
    RankingWeights,
    SearchHandler,
    SearchRequest,
)
from sona.wire import NOT_BLANK

if TYPE_CHECKING:
    from sona.serving.app import SonaApp
    from sona.serving.search_api import UserVectors

log = logging.getLogger(__name__)
T = TypeVar("T")

SEARCH_PREFIX = "/api/v1/search"
RANKING_PREFIX = "/api/v1/admin/search/ranking"


@dataclass(frozen=True, slots=True)
class SearchServingConfig:
    """Where the serving search engine comes from and where its analytics go."""

    # Relative paths are taken from the repository root: `bentoml serve --working-dir
    # serving` runs the worker inside serving/, so the process directory is not a guide.
    # saved engine folder (save_engine layout); None: search_engine/ next to the database
    engine_dir: str | None = None
    # MovieLens-100K folder that seeds an empty catalog before the engine is built from it
    dataset: str = "datasets/ml-100k"
    # document/query encoder of a newly built engine: "minilm" (embedding cache) or "tfidf"
    encoder: Literal["minilm", "tfidf"] = "minilm"
    # MiniLM embedding cache folder (None: encode in memory only)
    cache_dir: str | None = "datasets/cache/embeddings"
    # ignore a saved engine and build (and save) a new one
    rebuild: bool = False
    # load the query encoder on a background thread at start-up
    warm_up: bool = True
    # SQLAlchemy URL of analytics + ranking tables; None: search_analytics.db next to database
    url: str | None = None


class SearchService:
    """The serving search handler plus its start-up outcome.

    Args:
        handler: the handler (its engine is unbuilt when the build failed).
        error: why the engine could not be built, or None.
        source: where the engine came from (``"loaded <dir>"``, ``"built from <dataset>"``).
    """

    def __init__(self, handler: SearchHandler, *, error: str | None = None,
                 source: str = "", catalog: CatalogStore | None = None,
                 user_vectors: Callable[[SearchEngine], UserVectors] | None = None) -> None:
        self._handler = handler
        self.error = error
        self.source = source
        self.catalog = catalog
        self._user_vectors = user_vectors
        self._update_lock = threading.Lock()
        self.warm_up_thread: threading.Thread | None = None
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop

    def apply(self, update: IndexUpdate) -> None:
        """Follow a catalog change: upserted items are re-read from the catalog (absent
        ones, deleted since, are dropped) and embedded, removed ones leave the engine.

        The engine is updated in place (:meth:`SearchEngine.update`: tantivy, faiss and
        autocomplete change by the written items only), under its write lock, so a search
        sees either the old or the new catalog, never a mix. Once the tombstones of
        replaced or removed documents outnumber the live ones, a rebuilt engine
        (:meth:`SearchEngine.updated`) replaces it in one reference swap instead.

        Called on the request thread of the worker that made the write, and on the catalog
        relay's thread of every other worker (:mod:`sona.serving.catalog_relay`) with the
        same ids and no vectors: each re-reads the shared catalog, so all agree.
        """
        if self.error is not None or self.catalog is None:
            return
        with self._update_lock:
            found = [i for i in (self.catalog.find(c) for c in update.upsert_ids)
                     if i is not None]
            gone = [*update.removed_ids, *(set(update.upsert_ids)
                                           - {i.canonical_id for i in found})]
            start = time.perf_counter()
            engine = self._handler.engine
            engine.update(documents_from_items(found) if found else None, gone)
            how = "in place"
            if engine.tombstones > len(engine):
                engine, how = engine.updated(), "rebuilt"
            if self._user_vectors is not None:
                self._handler.user_vectors = self._user_vectors(engine)
            self._handler.engine = engine
        log.info("search index: %d upserted, %d removed %s in %.3f s (%d documents)",
                 len(found), len(gone), how, time.perf_counter() - start, len(engine))

    @property
    def handler(self) -> SearchHandler:
        """The handler; raises ApiError 503 naming the build error when there is no engine."""
        if self.error is not None:
            raise ApiError(503, "search_unavailable",
                           f"the search engine could not be loaded: {self.error}")
        return self._handler

    async def offload(self, fn: Callable[[], T], threads: int) -> T:
        """``fn()`` on a worker thread, at most ``threads`` of this service's at a time (as
        BentoML runs a sync API: its thread count), so that concurrent new queries do not
        all run the encoder at once and oversubscribe the cores."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(threads)
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    def runs_inline(self, req: SearchRequest,
                    mode: Literal["hybrid", "keyword", "vector"] = "hybrid") -> bool:
        """Whether ``req`` may be served on the event loop
        (:meth:`SearchHandler.runs_inline`); never without an engine."""
        return self.error is None and self._handler.runs_inline(req, mode)

    @property
    def store(self) -> SearchHandler:
        """The handler regardless of the engine (analytics and ranking work without one)."""
        return self._handler

    def warm_up(self) -> None:
        """Load the query encoder on a daemon thread (idempotent).

        Queries that arrive meanwhile wait for that load rather than start a second one.
        """
        if self.error is not None or self.warm_up_thread is not None:
            return
        engine = self._handler.engine
        if engine.encoder is not None and not isinstance(engine.encoder, _LoadOnce):
            engine.encoder = _LoadOnce(engine.encoder)

        def run() -> None:
            start = time.perf_counter()
            try:
                engine.query_vector("warm up the query encoder")
            except Exception as exc:  # search still works; the first query loads it instead
                log.warning("search query encoder warm-up failed: %s", exc)
                return
            self._handler.encoder_loaded = True  # its stage timeout applies from now on
            log.info("search query encoder ready in %.1f s", time.perf_counter() - start)

        self.warm_up_thread = threading.Thread(target=run, name="search-warm-up", daemon=True)
        self.warm_up_thread.start()

    def close(self) -> None:
        """Release the analytics and ranking database connections."""
        self._handler.analytics.engine.dispose()
        self._handler.ranking.engine.dispose()


class _LoadOnce:
    """The service's query encoder: its first ``encode`` (the model load) runs under a lock,
    and single new queries from concurrent requests share forward passes
    (:class:`~sona.serving.batching.ThreadBatcher`).

    A batch pads its texts to the longest, so a vector can differ from the one the query
    gets alone by float rounding (~1e-7), never by more.
    """

    def __init__(self, inner: Any, *, max_batch: int = 16) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._loaded = False
        self.batcher: ThreadBatcher[str, Any] = ThreadBatcher(self._encode_batch,
                                                              max_batch=max_batch)

    def _encode_batch(self, texts: Sequence[str]) -> list[Any]:
        return list(self.inner.encode(list(texts), use_cache=False))

    def encode(self, texts: list[str], *, use_cache: bool = True) -> Any:
        """``inner.encode`` (see :class:`~sona.search.engine.Encoder`)."""
        if not self._loaded:
            with self._lock:
                out = self.inner.encode(texts, use_cache=use_cache)
                self._loaded = True
                return out
        if not use_cache and isinstance(texts, list) and len(texts) == 1 \
                and isinstance(texts[0], str):
            return self.batcher.submit(texts[0])[None, :]
        return self.inner.encode(texts, use_cache=use_cache)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def repo_path(path: str) -> Path:
    """``path`` itself when absolute, else under the repository root."""
    return Path(path) if Path(path).is_absolute() else REPO_ROOT / path


def engine_dir(config: SearchServingConfig, database: str) -> Path:
    """The saved-engine folder: ``config.engine_dir`` or ``search_engine/`` next to ``database``."""
    if config.engine_dir:
        return repo_path(config.engine_dir)
    return Path(database).resolve().parent / "search_engine"


def build_engine(config: SearchServingConfig, documents: pd.DataFrame) -> SearchEngine:
    """A new engine over ``documents`` (:func:`catalog_documents`), encoder per ``config``."""
    docs = documents
    cache = str(repo_path(config.cache_dir)) if config.cache_dir is not None else None
    encoder_config = EncoderConfig(cache_dir=cache, show_progress=False)
    # an ML-100K-sized catalog: exact (flat) inner product is both fastest and exact
    search_config = SearchConfig(vector=FaissIndexConfig(kind="flat"), encoder=encoder_config)
    encoder = TextEncoder(encoder_config) if config.encoder == "minilm" else TfidfEncoder()
    return SearchEngine(search_config, encoder).build(docs)


def _engine(config: SearchServingConfig, database: str,
            catalog: CatalogStore) -> tuple[SearchEngine, str]:
    folder = engine_dir(config, database)
    start = time.perf_counter()
    if not config.rebuild and (folder / "config.yaml").exists():
        engine = load_engine(folder)
        log.info("search engine loaded from %s: %d documents in %.2f s", folder, len(engine),
                 time.perf_counter() - start)
        return engine, f"loaded {folder}"
    engine = build_engine(config, catalog_documents(catalog, repo_path(config.dataset)))
    saved = config.encoder == "minilm"  # a fitted TF-IDF encoder cannot be saved
    if saved:
        save_engine(engine, folder)
    # a warning: the operator should know the engine was built here, not loaded
    log.warning("search engine built from the catalog %s (%s in %s): %d documents, %s "
                "vectors %s, in %.2f s%s", catalog.url,
                "rebuild requested" if config.rebuild else "no saved engine", folder,
                len(engine), config.encoder, tuple(engine.vectors_.shape),
                time.perf_counter() - start, f"; saved to {folder}" if saved else "")
    return engine, f"built from {catalog.url}"


def build_search_service(config: SearchServingConfig, database: str, *,
                         catalog: CatalogStore | None = None,
                         user_vectors: Callable[[SearchEngine], UserVectors] | None = None,
                         encoder_breaker: CircuitBreaker | None = None,
                         encoder_timeout_s: float | None = None) -> SearchService:
    """Load or build the engine and wire the handler (never raises for a missing engine).

    Args:
        config: search settings.
        database: the serving database path (defaults go next to it).
        catalog: the catalog store the documents come from and follow (None: the default
            ``catalog.db`` next to ``database``).
        user_vectors: builds the ``user_id -> vector`` lookup for the engine.
        encoder_breaker, encoder_timeout_s: the query encoder's circuit breaker and timeout
            (see :class:`~sona.serving.search_api.SearchHandler`).
    """
    url = config.url or sqlite_url(Path(database).resolve().parent / DB_NAME)
    analytics = SearchAnalytics(url)
    if catalog is None:
        catalog = CatalogStore(sqlite_url(Path(database).resolve().parent / "catalog.db"))
    try:
        engine, source = _engine(config, database, catalog)
    except Exception as exc:  # serve analytics/ranking and a 503 for search, not a dead service
        log.error("search engine unavailable (%s); search endpoints answer 503", exc)
        unbuilt = SearchEngine()
        ranking = RankingStore(url, default=unbuilt.config.ranking)
        return SearchService(SearchHandler(unbuilt, analytics, ranking=ranking), error=str(exc))
    ranking = RankingStore(url, default=engine.config.ranking)
    handler = SearchHandler(engine, analytics, ranking=ranking,
                            user_vectors=user_vectors(engine) if user_vectors else None,
                            encoder_breaker=encoder_breaker,
                            encoder_timeout_s=encoder_timeout_s)
    service = SearchService(handler, source=source, catalog=catalog,
                            user_vectors=user_vectors)
    if config.warm_up:
        service.warm_up()
    return service


class AutocompleteQuery(BaseModel):
    """``?q=&limit=`` of autocomplete."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    q: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK, description="typed prefix")
    limit: int = Field(10, ge=1, le=50, description="most suggestions")


class AnalyticsQuery(BaseModel):
    """``?period=&limit=`` of the analytics report."""

    model_config = ConfigDict(extra="forbid")
    period: str = Field("24h", json_schema_extra={"enum": list(PERIODS)},
                        description="window: one of " + ", ".join(PERIODS))
    limit: int = Field(10, ge=1, le=1000, description="most queries per top list")


class VersionPath(BaseModel):
    """``{version}`` of the ranking history route."""

    # versions are int64 row ids: a larger number is refused, not an overflow (500)
    version: int = Field(ge=1, le=2**63 - 1, description="a stored ranking version")


class VariantPath(BaseModel):
    """``{name}`` of the ranking variant routes."""

    name: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK,
                      description="variant name (what a search's experiment_variant names)")


def search_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""

    async def run(request: Request, endpoint: str, scope: str | None,
                  call: Callable[[SonaApp], Any]) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(
            app.dispatch, endpoint, lambda: _listed(call(app)), headers=dict(request.headers),
            scope=scope)
        return JSONResponse(body, status_code=status)

    async def autocomplete(request: Request) -> JSONResponse:
        query = parse_query(request, AutocompleteQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "search_autocomplete", None, lambda app: app.search.handler
                         .autocomplete(query.q, query.limit))

    async def analytics(request: Request) -> JSONResponse:
        query = parse_query(request, AnalyticsQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run(request, "search_analytics", "read", lambda app: app.search.store
                         .analytics_report(query.period, query.limit))

    async def ranking(request: Request) -> JSONResponse:
        if request.method == "GET":
            return await run(request, "search_ranking_get", "read",
                             lambda app: app.search.store.get_ranking())
        body = await parse_body(request, RankingWeights)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "search_ranking_put", "admin",
                         lambda app: app.search.store.put_ranking(body))  # type: ignore[arg-type]

    async def variants(request: Request) -> JSONResponse:
        return await run(request, "search_ranking_variants", "read",
                         lambda app: app.search.store.ranking_variants())

    async def variant(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if request.method == "GET":
            return await run(request, "search_ranking_variant_get", "read",
                             lambda app: app.search.store.get_variant(name))
        if request.method == "DELETE":
            return await run(request, "search_ranking_variant_delete", "admin",
                             lambda app: app.search.store.delete_variant(name))
        body = await parse_body(request, RankingVariantModel)
        if isinstance(body, JSONResponse):
            return body
        return await run(request, "search_ranking_variant_put", "admin",
                         lambda app: app.search.store.put_variant(name, body))  # type: ignore[arg-type]

    async def history(request: Request) -> JSONResponse:
        raw = request.path_params["version"]
        return await run(request, "search_ranking_history", "read",
                         lambda app: app.search.store.ranking_history(_version(raw)))

    tag = "search"
    return Starlette(routes=[
        api_route(SEARCH_PREFIX + "/autocomplete", autocomplete, Operation(
            "GET", "Title, person, genre and platform suggestions for a prefix",
            operation_id="search_autocomplete", query=AutocompleteQuery,
            response=AutocompleteResponse, errors=(503,), tag=tag)),
        api_route("/api/v1/analytics", analytics, Operation(
            "GET", "Search analytics over a period", operation_id="search_analytics",
            query=AnalyticsQuery, scope="read", tag=tag)),
        api_route(RANKING_PREFIX, ranking, Operation(
            "GET", "Current ranking version and weights", operation_id="search_ranking_get",
            scope="read", tag=tag), Operation(
            "PUT", "Store new ranking weights as the next version",
            operation_id="search_ranking_put", body=RankingWeights, scope="admin", tag=tag)),
        api_route(RANKING_PREFIX + "/variants", variants, Operation(
            "GET", "Named ranking variants", operation_id="search_ranking_variants",
            scope="read", tag=tag)),
        api_route(RANKING_PREFIX + "/variants/{name}", variant, Operation(
            "GET", "One ranking variant", operation_id="search_ranking_variant_get",
            path=VariantPath, scope="read", errors=(404,), tag=tag), Operation(
            "PUT", "Create or replace a ranking variant",
            operation_id="search_ranking_variant_put", body=RankingVariantModel,
            path=VariantPath, scope="admin", tag=tag), Operation(
            "DELETE", "Delete a ranking variant", operation_id="search_ranking_variant_delete",
            path=VariantPath, scope="admin", errors=(404,), tag=tag)),
        api_route(RANKING_PREFIX + "/history/{version}", history, Operation(
            "GET", "A stored ranking version", operation_id="search_ranking_history",
            path=VersionPath, scope="read", errors=(404,), tag=tag)),
    ])


def _version(raw: str) -> int:
    try:
        return VersionPath.model_validate({"version": raw}).version
    except ValidationError as exc:
        raise ApiError(400, "validation_error", f"version: expected an integer in "
                       f"[1, 2^63 - 1], got {raw!r} ({exc.errors()[0]['msg']})",
                       fields=["version"]) from None


def _listed(result: Any) -> Any:
    """JSON bodies are objects: a list result becomes ``{"items": [...]}``."""
    return {"items": result} if isinstance(result, list) else result


__all__ = [
    "RANKING_PREFIX", "SEARCH_PREFIX", "SearchService", "SearchServingConfig", "build_engine",
    "build_search_service", "catalog_documents", "engine_dir", "search_routes",
]
