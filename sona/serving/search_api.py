"""Search endpoints (SPEC §3.8): pydantic schemas and the handler the BentoML service calls.

:class:`SearchHandler` is plain Python (no bentoml import). Each method takes a validated
request model and returns a response model, raising :class:`~sona.serving.errors.ApiError`
with a 4xx status for bad input: empty or too long queries, unknown filter values, unknown
variants, bad paging (400), unknown search events or ranking versions/variants (404), and 503
when the engine has not been built. Analytics are logged for every served search.

The query encoder sits behind a circuit breaker with a timeout
(:mod:`sona.serving.resilience`): when it fails, times out or its breaker is open, a hybrid
search answers from the keyword index alone and says so with ``"degraded": ["vector"]``;
the vector-only debug endpoint answers 503 ``encoder_unavailable`` instead.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from sona import tracing
from sona.catalog.availability import AvailabilityFilter, WhereToWatch
from sona.catalog.schema import PLATFORMS, utcnow
from sona.errors import NotFittedError, UnknownIdError
from sona.genres import GENRES
from sona.search.analytics import SearchAnalytics
from sona.search.engine import SearchEngine, SearchResult
from sona.search.filters import MATURITY_RATINGS, SearchFilters
from sona.search.fusion import PERSONALIZATION_BOOSTS, RankingConfig
from sona.search.ranking_store import RankingStore
from sona.serving.errors import ApiError
from sona.serving.metrics import serving_metrics
from sona.serving.resilience import CircuitBreaker
from sona.serving.schemas import PlatformName
from sona.serving.where_to_watch import WhereToWatchService, availability_filter
from sona.wire import NOT_BLANK, Bool, Int, Number

log = logging.getLogger(__name__)

UserVectors = Callable[[str], NDArray[np.float32] | None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class Range(_Model):
    """Inclusive numeric range; either end may be open."""

    min: Number | None = None
    max: Number | None = None


class RatingRange(Range):
    """Inclusive range of average ratings, both ends within 0-10."""

    min: Number | None = Field(None, ge=0, le=10)
    max: Number | None = Field(None, ge=0, le=10)


class FiltersModel(_Model):
    """Request filters (SPEC §3.3); unknown values are a 400 naming them."""

    # canonical genres, maturity ratings (the schema lists them; the handler also takes mapped
    # labels such as "Sci-Fi" and "PG-13")
    genres: list[str] = Field(default_factory=list, json_schema_extra={
        "items": {"type": "string", "enum": list(GENRES)}})
    platforms: list[PlatformName] = Field(default_factory=list, max_length=len(PLATFORMS))
    year_range: Range | None = None
    rating_range: RatingRange | None = None
    runtime_range: Range | None = None
    content_rating_limit: str | None = Field(None, json_schema_extra={
        "anyOf": [{"type": "string", "enum": list(MATURITY_RATINGS)}, {"type": "null"}]})
    # where to watch (sona.serving.where_to_watch): platforms/available_now keep the items
    # with an offer live now in `region` (default US); region alone picks the offers shown
    region: str | None = Field(default=None, min_length=2, max_length=2,
                               pattern="^[A-Za-z]{2}$")
    available_now: Bool = False


class SearchRequest(_Model):
    """``POST /api/v1/search`` body."""

    # not blank; the engine's max_query_length (default 500) is checked by the handler
    query: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK)
    filters: FiltersModel | None = None
    page: Int = Field(default=1, ge=1)
    page_size: Int = Field(default=20, ge=1, le=100)
    user_id: str | None = None
    # a personalisation boost or an active ranking variant; another name is a 404
    experiment_variant: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="personalisation boost (" + ", ".join(PERSONALIZATION_BOOSTS) + ") or the "
                    "name of an active ranking variant; an unknown name is 404 unknown_variant")


class ContentModel(_Model):
    """The content part of a result."""

    id: str
    title: str
    overview: str | None = None
    release_year: int | None = None
    genres: list[str]
    platforms: list[str]
    popularity_score: float
    # live offers in the request's region; None when the catalog does not hold the item
    where_to_watch: WhereToWatch | None = None


class ResultModel(_Model):
    """One ranked result."""

    content: ContentModel
    relevance_score: float
    match_reasons: list[str]
    vector_similarity: float | None = None
    graph_score: float | None = None
    keyword_score: float | None = None


class SearchResponse(_Model):
    """``POST /api/v1/search`` reply."""

    results: list[ResultModel]
    total_count: int
    page: int
    page_size: int
    query_parsed: dict[str, Any]
    search_time_ms: float
    facets: dict[str, list[dict[str, Any]]]
    search_event_id: int | None = None
    # strategies left out because their dependency failed ("vector": the query encoder)
    degraded: list[Literal["vector"]] = Field(default_factory=list)


class SuggestionModel(_Model):
    """One autocomplete suggestion."""

    text: str
    type: Literal["title", "person", "genre", "platform", "keyword"]
    popularity: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class AutocompleteResponse(_Model):
    """``GET /api/v1/search/autocomplete`` reply."""

    query: str
    suggestions: list[SuggestionModel]
    cached: bool


class ClickRequest(_Model):
    """``POST /api/v1/search/click`` body."""

    search_event_id: Int = Field(ge=1, le=2**63 - 1)
    content_id: str
    # 1-based rank of the clicked result; a page holds at most a few hundred, so 10,000 is
    # generous (an unbounded integer overflowed the database column: schemathesis, a 500)
    position: Int = Field(ge=1, le=10_000)


class RankingWeights(_Model):
    """Ranking weights (must be >= 0 and sum to 1)."""

    vector: Number = Field(ge=0, le=1)
    keyword: Number = Field(ge=0, le=1)
    quality: Number = Field(ge=0, le=1)
    freshness: Number = Field(ge=0, le=1)
    popularity: Number = Field(0.0, ge=0, le=1)


class RankingVariantModel(_Model):
    """A named ranking variant."""

    weights: RankingWeights
    is_active: Bool = True
    traffic_percentage: Number = Field(0.0, ge=0, le=100)


def _bad(message: str, error: str = "invalid_request") -> ApiError:
    return ApiError(400, error, message)


def to_filters(model: FiltersModel | None) -> SearchFilters:
    """Request filters -> validated :class:`SearchFilters` (ApiError 400 on bad values)."""
    if model is None:
        return SearchFilters()
    yr, rr, rt = model.year_range, model.rating_range, model.runtime_range
    try:
        return SearchFilters(
            genres=tuple(model.genres), platforms=tuple(model.platforms),
            year_min=int(yr.min) if yr and yr.min is not None else None,
            year_max=int(yr.max) if yr and yr.max is not None else None,
            rating_min=rr.min if rr else None, rating_max=rr.max if rr else None,
            runtime_min=rt.min if rt else None, runtime_max=rt.max if rt else None,
            max_maturity=model.content_rating_limit,
        ).validated()
    except ValueError as exc:
        raise _bad(str(exc), "invalid_filter") from exc


class SearchHandler:
    """The search API (see module docstring).

    Args:
        engine: a built :class:`SearchEngine`.
        analytics: where searches and clicks are logged.
        ranking: versioned ranking weights; defaults to an in-memory store seeded with the
            engine's weights.
        user_vectors: ``user_id -> SONA preference vector`` (same space as the item vectors)
            or None when the user has no profile; personalisation is skipped then.
        encoder_breaker: circuit breaker of the query encoder.
        encoder_timeout_s: seconds one query embedding may take once the encoder has
            loaded (the first, loading call is not bounded); None: no limit.
        where: catalog availability (``where_to_watch`` on results; platform/region/
            available_now filters as the ids watchable now); None: the platform filter
            matches the documents' platforms and results carry no offers.
    """

    def __init__(self, engine: SearchEngine, analytics: SearchAnalytics, *,
                 ranking: RankingStore | None = None, user_vectors: UserVectors | None = None,
                 encoder_breaker: CircuitBreaker | None = None,
                 encoder_timeout_s: float | None = None,
                 where: WhereToWatchService | None = None) -> None:
        self.engine = engine
        self.where = where
        self.analytics = analytics
        self.ranking = ranking or RankingStore(analytics.url, default=engine.config.ranking)
        self.user_vectors = user_vectors
        self.encoder_breaker = encoder_breaker or CircuitBreaker("search_encoder")
        self.encoder_timeout_s = encoder_timeout_s
        # set after the first embedding: the encoder's model has loaded
        self.encoder_loaded = False

    # --- search ----------------------------------------------------------------------
    def _engine_for(self, variant: str | None) -> SearchEngine:
        version_cfg = self.ranking.current()[1]
        chosen = self.ranking.active_variant(variant) if variant else None
        cfg = chosen or version_cfg
        return self.engine if cfg == self.engine.config.ranking else \
            self.engine.with_config(ranking=cfg)

    def _user_vector(self, user_id: str | None) -> tuple[NDArray[np.float32] | None, str]:
        if user_id is None or self.user_vectors is None:
            return None, ""
        try:
            vec = self.user_vectors(user_id)
        except Exception as exc:  # SPEC §3.1: on personalisation failure keep the order
            log.warning("user vector lookup failed for a user: %s", exc)
            return None, "personalization unavailable"
        if vec is None or not np.any(vec):
            return None, "no profile"
        if np.asarray(vec).shape[-1] != self.engine.vectors_.shape[1]:
            return None, "profile vector dimension differs from the catalog embeddings"
        return np.asarray(vec, dtype=np.float32), ""

    def _encoder_failure(self, engine: SearchEngine, text: str) -> str | None:
        """Embed ``text`` into the engine's query cache under the breaker; None when it
        worked, else why not."""
        # a cached query vector is a dict lookup: it runs inline (still through the breaker)
        # rather than on the stage pool's thread, a hand-off per warm query (issue 12)
        timeout = self.encoder_timeout_s if self.encoder_loaded \
            and not engine.has_query_vector(text) else None
        try:
            with tracing.span("search.encode"):
                self.encoder_breaker.call(lambda: engine.query_vector(text), timeout_s=timeout)
        except Exception as exc:  # any encoder failure: keyword search still answers
            log.warning("search query encoder unavailable (%s: %s)", type(exc).__name__, exc)
            return str(exc) or type(exc).__name__
        self.encoder_loaded = True
        return None

    def runs_inline(self, req: SearchRequest,
                    mode: Literal["hybrid", "keyword", "vector"] = "hybrid") -> bool:
        """Whether serving ``req`` is short GIL-bound work that never waits: no query
        encoding (keyword mode or a cached query vector), no user vector (a profile may be
        read from the database) and no catalog update holding or awaiting the index's write
        lock. Such a search may run on the event loop; any other on a worker thread."""
        engine = self.engine
        if not len(engine) or req.user_id is not None or engine.live_.lock.writing:
            return False
        return mode == "keyword" or engine.has_query_vector(req.query.strip())

    def _run(self, req: SearchRequest, mode: Literal["hybrid", "keyword", "vector"]
             ) -> SearchResponse:
        if not req.query.strip():
            raise _bad("query is empty", "empty_query")
        limit = self.engine.config.max_query_length
        if len(req.query.strip()) > limit:
            raise _bad(f"query is {len(req.query.strip())} characters; the limit is {limit}",
                       "query_too_long")
        variant = req.experiment_variant
        if variant is not None and variant not in PERSONALIZATION_BOOSTS and \
                self.ranking.active_variant(variant) is None:
            raise ApiError(404, "unknown_variant", f"experiment_variant: no personalisation "
                           f"boost or active ranking variant is named {variant!r}",
                           field="experiment_variant")
        now = utcnow()
        watch = self._watch_filter(req.filters)  # first: its errors name filters.platforms
        filters = to_filters(req.filters)
        if watch.active and self.where is not None:  # live offers, not indexed platform tags
            filters = dataclasses.replace(filters, platforms=(), only_ids=self.where.index
                                          .matching_ids(watch, now))
        user_vec, note = self._user_vector(req.user_id)
        engine = self._engine_for(variant)
        degraded: list[Literal["vector"]] = []
        if mode != "keyword" and len(engine):
            failure = self._encoder_failure(engine, req.query.strip())
            if failure is not None:
                if mode == "vector":
                    raise ApiError(503, "encoder_unavailable",
                                   f"the search query encoder is unavailable: {failure}")
                serving_metrics().fallbacks.labels("encoder").inc()
                mode, degraded = "keyword", ["vector"]
        try:
            result = engine.search(
                req.query, filters=filters, page=req.page, page_size=req.page_size, mode=mode,
                user_vector=user_vec,
                variant=variant if variant in PERSONALIZATION_BOOSTS else None)
        except NotFittedError as exc:
            raise ApiError(503, "not_ready", str(exc)) from exc
        except ValueError as exc:
            raise _bad(str(exc)) from exc
        if note:
            result.parsed["personalization"] = note
        with tracing.span("search.analytics"):
            event_id = self.analytics.log_search(
                req.query, result_count=result.total_count, latency_ms=result.search_time_ms,
                user_id=req.user_id, filters=filters.to_dict() | _logged(watch), mode=mode,
                variant=variant, shown_ids=[h.item_id for h in result.hits])
        return self._response(result, event_id, degraded, watch, now)

    def _watch_filter(self, model: FiltersModel | None) -> AvailabilityFilter:
        if model is None:
            return AvailabilityFilter()
        return availability_filter(model.platforms, model.region, model.available_now,
                                   prefix="filters.")

    def _response(self, result: SearchResult, event_id: int,
                  degraded: list[Literal["vector"]] | None = None,
                  watch: AvailabilityFilter | None = None,
                  now: datetime | None = None) -> SearchResponse:
        where, watch, now = self.where, watch or AvailabilityFilter(), now or utcnow()
        out = []
        for h in result.hits:
            row = self.engine.document(h.position)
            year = row["year"]
            out.append(ResultModel(
                content=ContentModel(
                    id=str(h.item_id), title=row["title"], overview=row["overview"] or None,
                    release_year=None if np.isnan(year) else int(year),
                    genres=list(row["genres"]), platforms=list(row["platforms"]),
                    popularity_score=float(row["popularity"]),
                    where_to_watch=None if where is None else where.lookup(h.item_id, watch,
                                                                           now)),
                relevance_score=h.score, match_reasons=list(h.match_reasons),
                vector_similarity=h.vector_similarity, keyword_score=h.keyword_score))
        return SearchResponse(results=out, total_count=result.total_count, page=result.page,
                              page_size=result.page_size, query_parsed=result.parsed,
                              search_time_ms=round(result.search_time_ms, 3),
                              facets=result.facets, search_event_id=event_id,
                              degraded=degraded or [])

    def search(self, req: SearchRequest) -> SearchResponse:
        """``POST /api/v1/search``: the hybrid pipeline."""
        return self._run(req, "hybrid")

    def search_keyword(self, req: SearchRequest) -> SearchResponse:
        """``POST /api/v1/search/keyword``: BM25 only (debug/eval)."""
        return self._run(req, "keyword")

    def search_vector(self, req: SearchRequest) -> SearchResponse:
        """``POST /api/v1/search/vector``: embeddings only (debug/eval)."""
        return self._run(req, "vector")

    def autocomplete(self, q: str, limit: int = 10) -> AutocompleteResponse:
        """``GET /api/v1/search/autocomplete?q&limit``."""
        if not q.strip():
            raise _bad("q is empty", "empty_query")
        if len(q) > 200:
            raise _bad(f"q is {len(q)} characters; the limit is 200", "query_too_long")
        if not 1 <= int(limit) <= 50:
            raise _bad(f"limit must be in 1..50, got {limit}")
        try:
            found, cached = self.engine.autocomplete(q, int(limit))
        except NotFittedError as exc:
            raise ApiError(503, "not_ready", str(exc)) from exc
        return AutocompleteResponse(
            query=q, cached=cached,
            suggestions=[SuggestionModel(**s.to_dict()) for s in found])

    def click(self, req: ClickRequest) -> dict[str, Any]:
        """``POST /api/v1/search/click``: log a click on a result."""
        try:
            click_id = self.analytics.log_click(req.search_event_id, req.content_id,
                                                req.position)
        except UnknownIdError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        return {"click_id": click_id, "search_event_id": req.search_event_id}

    def analytics_report(self, period: str = "24h", limit: int = 10) -> dict[str, Any]:
        """``GET /api/v1/analytics?period&limit``."""
        try:
            return self.analytics.report(period, int(limit))
        except ValueError as exc:
            raise _bad(str(exc)) from exc

    # --- admin ranking ---------------------------------------------------------------
    def get_ranking(self) -> dict[str, Any]:
        """``GET /admin/search/ranking``: current version and weights."""
        version, cfg = self.ranking.current()
        return {"version": version, "weights": RankingWeights(**_as_dict(cfg)).model_dump()}

    def put_ranking(self, weights: RankingWeights) -> dict[str, Any]:
        """``PUT /admin/search/ranking``: store new weights as the next version."""
        try:
            version = self.ranking.put(RankingConfig(**weights.model_dump()))
        except ValueError as exc:
            raise _bad(str(exc), "invalid_weights") from exc
        return {"version": version, "weights": weights.model_dump()}

    def ranking_history(self, version: int) -> dict[str, Any]:
        """``GET /admin/search/ranking/history/{version}``."""
        return self._found(lambda: self.ranking.version(version))

    def ranking_variants(self) -> list[dict[str, Any]]:
        """``GET /admin/search/ranking/variants``."""
        return self.ranking.variants()

    def get_variant(self, name: str) -> dict[str, Any]:
        """``GET /admin/search/ranking/variants/{name}``."""
        return self._found(lambda: self.ranking.variant(name))

    def put_variant(self, name: str, body: RankingVariantModel) -> dict[str, Any]:
        """``PUT /admin/search/ranking/variants/{name}``."""
        try:
            return self.ranking.put_variant(name, RankingConfig(**body.weights.model_dump()),
                                            is_active=body.is_active,
                                            traffic_percentage=body.traffic_percentage)
        except ValueError as exc:
            raise _bad(str(exc), "invalid_weights") from exc

    def delete_variant(self, name: str) -> dict[str, Any]:
        """``DELETE /admin/search/ranking/variants/{name}``."""
        self._found(lambda: self.ranking.delete_variant(name))
        return {"deleted": name}

    @staticmethod
    def _found(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except UnknownIdError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc

    def health(self) -> dict[str, Any]:
        """``GET /health``: whether an index is loaded and its size."""
        return {"status": "ok" if len(self.engine) else "empty", "documents": len(self.engine)}


def _logged(watch: AvailabilityFilter) -> dict[str, Any]:
    """The availability part of a search's logged filters (empty when inactive)."""
    if not watch.active:
        return {}
    return {"platforms": list(watch.platforms), "region": watch.region,
            "available_now": watch.available_now}


def _as_dict(cfg: RankingConfig) -> dict[str, float]:
    return {"vector": cfg.vector, "keyword": cfg.keyword, "quality": cfg.quality,
            "freshness": cfg.freshness, "popularity": cfg.popularity}


__all__ = [
    "AutocompleteResponse", "ClickRequest", "FiltersModel", "RankingVariantModel",
    "RankingWeights", "SearchHandler", "SearchRequest", "SearchResponse", "to_filters",
]
