"""Recommendation and personalisation handlers (SPEC §2.10), plain Python, no BentoML.

:class:`RecsHandler` turns requests into calls of the served
:class:`~sona.pipeline.Pipeline` and its results into responses; it ranks nothing itself.
A request's user becomes a :class:`~sona.pipeline.UserState` (profile events, adapter,
signup genres; :class:`Personalization`), its context a
:class:`~sona.ranking.context.Context`, and :meth:`Pipeline.rank` does the rest: sources,
blend, LoRA boost, exclusions, cold start and MMR, the code ``sona run`` scored. An A/B arm
may override the weights, λ or LoRA boost (:class:`RankOverrides`); nothing else differs.

When the ranking fails (ONNX Runtime or the pipeline raises, it runs past its stage timeout,
or its circuit breaker is open; :mod:`sona.serving.resilience`) the users get the pipeline's
own trending list instead (:func:`~sona.pipeline.ranking.cold_start` without signup genres,
scored by :meth:`~sona.pipeline.Pipeline.popularity_share`), marked ``strategy: "fallback"``
and ``recommendation_type: "fallback"``: a real list, never an error or an empty one.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import numpy as np

from sona.catalog.availability import AvailabilityFilter
from sona.pipeline import LABELS, SOURCES, Ranked, UserState
from sona.pipeline.ranking import allowed_mask, cold_start
from sona.profile import ViewingEvent
from sona.ranking.context import Context
from sona.serving.errors import ApiError
from sona.serving.metrics import ServingMetrics
from sona.serving.model_store import LoadedModel, ModelStore
from sona.serving.personalization import Personalization
from sona.serving.resilience import CircuitBreaker
from sona.serving.schemas import (
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    LoraTrainRequest,
    LoraTrainResponse,
    ProfileUpdateRequest,
    ProfileUpdateResponse,
    Recommendation,
    RecommendationContext,
    RecommendationRequest,
    RecommendationResponse,
    RecommendationType,
    ScoreComponents,
    ScoreRequest,
    ScoreResponse,
    SimilarItem,
    SimilarRequest,
    SimilarResponse,
)
from sona.serving.where_to_watch import WhereToWatchService, availability_filter
from sona.types import IndexArray

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RecsConfig:
    """Response settings; what is ranked and how lives in the served pipeline's config."""

    # response TTLs in seconds: personalised / trending
    ttl_seconds: int = 3600
    trending_ttl_seconds: int = 1800
    # TTL of a fallback list (served while the model's ranking fails): short, so clients
    # come back for a personalised one soon
    fallback_ttl_seconds: int = 60


@dataclass(frozen=True, slots=True)
class RankOverrides:
    """An A/B arm's changes to the served pipeline's ranking (None keeps the pipeline's)."""

    # blend weight per source name (missing sources weigh 0)
    weights: dict[str, float] | None = None
    # MMR λ (overrides the request's diversity_threshold)
    mmr_lambda: float | None = None
    # LoRA multiplier
    lora_boost: float | None = None

    def weight_array(self) -> np.ndarray | None:
        """Weights in :data:`SOURCES` order, or None."""
        if self.weights is None:
            return None
        unknown = sorted(set(self.weights) - set(SOURCES))
        if unknown:
            raise ApiError(400, "bad_variant", f"unknown source(s) {unknown} in variant "
                           f"weights; sources are {', '.join(SOURCES)}")
        return np.array([float(self.weights.get(s, 0.0)) for s in SOURCES])


def outcome(result: T | Exception) -> T:
    """``result``, or raise it when it is an exception (a slot of a ``*_many`` call)."""
    if isinstance(result, Exception):
        raise result
    return result


def to_context(ctx: RecommendationContext | None) -> Context | None:
    """The pipeline's context of a request context (None when absent)."""
    if ctx is None:
        return None
    return Context(hour=ctx.hour, weekday=ctx.weekday, device=ctx.device_type,
                   mood=ctx.mood or None, time_of_day=ctx.time_of_day,
                   viewing_with=tuple(ctx.viewing_with))


class RecsHandler:
    """The personalisation endpoints over a :class:`ModelStore`.

    Args:
        store: the served model (swapped atomically under us).
        personalization: profiles, adapters, user-state cache.
        metrics: latency metrics.
        config: response settings.
        overrides: an A/B arm's ranking overrides.
        breaker: circuit breaker of the model's ranking (shared by the A/B arms' handlers).
        timeout_s: stage timeout of one ranking call (None: inline, unbounded).
        where: catalog availability: ``where_to_watch`` on results and the platform/region
            filters, which restrict the ranking's candidates (None: no catalog, results
            carry no offers and an availability filter is a 503).
    """

    def __init__(self, store: ModelStore, personalization: Personalization,
                 metrics: ServingMetrics, config: RecsConfig = RecsConfig(),
                 overrides: RankOverrides | None = None, *,
                 breaker: CircuitBreaker | None = None, timeout_s: float | None = None,
                 where: WhereToWatchService | None = None) -> None:
        self.store = store
        self.personalization = personalization
        self.metrics = metrics
        self.config = config
        self.overrides = overrides or RankOverrides()
        self.breaker = breaker or CircuitBreaker("model")
        self.timeout_s = timeout_s
        self.where = where

    # --- recommendations ------------------------------------------------------------------

    def recommendations(self, req: RecommendationRequest) -> RecommendationResponse:
        """Top-``limit`` items for one user (cold-start list for cold users)."""
        return outcome(self.recommendations_many([req])[0])

    def recommendations_many(self, reqs: Sequence[RecommendationRequest]
                             ) -> list[RecommendationResponse | Exception]:
        """:meth:`recommendations` of each request, ranked in one :meth:`Pipeline.rank` call
        per group of requests whose options can share it (limit, exclusions, diversity,
        availability filter; each user keeps its own context). Each request's list is the
        one it gets alone (``Pipeline.rank`` ranks every row on its own); a request that
        fails gets its exception in its slot, the others their lists.
        """
        model = self.store.current
        out: list[RecommendationResponse | Exception | None] = [None] * len(reqs)
        groups: dict[tuple[Any, ...], list[tuple[int, UserState]]] = {}
        for i, req in enumerate(reqs):
            try:
                flt = availability_filter(req.platforms, req.region, req.available_now)
                state = self.personalization.state(model, req.user_id)
            except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                out[i] = exc
                continue
            key = (req.limit, req.exclude_watched, req.diversity_threshold, flt)
            groups.setdefault(key, []).append((i, state))
        for (limit, exclude_watched, diversity, flt), members in groups.items():
            try:
                lists: list[RecommendationResponse | Exception] = list(self._lists(
                    model, [s for _, s in members], [reqs[i].context for i, _ in members],
                    limit, exclude_watched, diversity, flt))
            except Exception as exc:  # noqa: BLE001
                if len(members) == 1:
                    lists = [exc]
                else:  # a client error of the group: each request gets its own answer
                    lists = [self.recommendations_many([reqs[i]])[0] for i, _ in members]
            for (i, _), resp in zip(members, lists, strict=True):
                out[i] = resp
        return [r if r is not None else RuntimeError("request not ranked") for r in out]

    def batch(self, req: BatchRecommendationRequest) -> BatchRecommendationResponse:
        """Lists for many users in one batched pass (no context)."""
        model = self.store.current
        flt = availability_filter(req.platforms, req.region, req.available_now)
        states = [self.personalization.state(model, u) for u in req.user_ids]
        return BatchRecommendationResponse(results=self._lists(
            model, states, None, req.limit, req.exclude_watched, None, flt))

    def _lists(self, model: LoadedModel, states: list[UserState],
               context: RecommendationContext | Sequence[RecommendationContext | None] | None,
               limit: int, exclude_watched: bool,
               diversity: float | None,
               flt: AvailabilityFilter) -> list[RecommendationResponse]:
        now = datetime.now(UTC)
        # an availability filter is the ranking's candidate set (as offline: Pipeline.rank)
        candidates = self._allowed(model, flt, now)
        o = self.overrides
        lam = o.mmr_lambda if o.mmr_lambda is not None else (
            None if diversity is None else 1.0 - diversity)
        weights = o.weight_array()
        contexts = [to_context(c) for c in context] if isinstance(context, Sequence) \
            else to_context(context)
        try:
            with self.metrics.time_source("pipeline"):
                ranked = self.breaker.call(
                    lambda: model.pipeline.rank(
                        states, limit, contexts=contexts,
                        exclude_watched=exclude_watched, candidates=candidates,
                        mmr_lambda=lam, weights=weights, lora_boost=o.lora_boost),
                    timeout_s=self.timeout_s, client_errors=(ValueError, ApiError))
        except (ValueError, ApiError):
            raise
        except Exception as exc:  # a broken, slow or switched-off model: popularity instead
            log.warning("model ranking failed (%s: %s); serving the popularity fallback",
                        type(exc).__name__, exc)
            self.metrics.fallbacks.labels("model").inc()
            return [self._watch(self._fallback(model, s, limit, exclude_watched, now,
                                               candidates), flt, now) for s in states]
        out = []
        for row, state in enumerate(states):
            strategy = ranked.strategy[row]
            if strategy != "personalized":
                self.metrics.cold_start.labels(strategy).inc()
            out.append(self._watch(RecommendationResponse(
                user_id=state.user_id, recommendations=self._items(model, ranked, row),
                generated_at=now, ttl_seconds=self.config.trending_ttl_seconds
                if strategy == "cold_start_trending" else self.config.ttl_seconds,
                strategy=cast(Any, strategy), model_version=model.version), flt, now))
        return out

    def _allowed(self, model: LoadedModel, flt: AvailabilityFilter,
                 now: datetime) -> IndexArray | None:
        """Item indices an active availability filter leaves to rank (None: all)."""
        if not flt.active:
            return None
        if self.where is None:
            raise ApiError(503, "catalog_unavailable", "this server has no catalog to filter "
                           "by platform or availability")
        return self.where.allowed(model.items, flt, now)

    def _watch(self, resp: RecommendationResponse, flt: AvailabilityFilter,
               now: datetime) -> RecommendationResponse:
        """``resp`` with each item's live offers in the filter's region (in-memory lookups)."""
        if self.where is not None:
            for rec in resp.recommendations:
                rec.where_to_watch = self.where.lookup(rec.content_id, flt, now)
        return resp

    def _fallback(self, model: LoadedModel, state: UserState, limit: int,
                  exclude_watched: bool, now: datetime,
                  candidates: IndexArray | None = None) -> RecommendationResponse:
        """The pipeline's trending list for ``state`` (its cold-start rule, no genres),
        among ``candidates`` when a filter gives them."""
        pipeline = model.pipeline
        allowed = allowed_mask(len(model.items), candidates, None)
        picked, _, _, _ = cold_start(replace(state, signup_genres=()),
                                     pipeline.features_.popularity, pipeline.features_.genres,
                                     limit, exclude_watched=exclude_watched, allowed=allowed)
        share = pipeline.popularity_share()
        recs = [Recommendation(content_id=i, confidence_score=float(share[p]),
                               recommendation_type="fallback", based_on=["popularity"],
                               explanation="Popular now (personalised ranking unavailable)")
                for i, p in zip(model.items.ids(picked), picked, strict=True)]
        return RecommendationResponse(
            user_id=state.user_id, recommendations=recs, generated_at=now,
            ttl_seconds=self.config.fallback_ttl_seconds, strategy="fallback",
            model_version=model.version)

    @staticmethod
    def _items(model: LoadedModel, ranked: Ranked, row: int) -> list[Recommendation]:
        """Row ``row`` of ``ranked`` as the response's items (padding left out).

        A personalised item names the sources that contributed to it (and LoRA when its
        term raised it); its type is that source's label when exactly one source has a
        nonzero contribution, else ``hybrid``. The per-item reasons are worked out with
        numpy over the row and looked up by pattern (:func:`_reason`), not per column.
        """
        idx = ranked.idx[row]
        valid = idx >= 0
        ids = model.items.ids(idx[valid]).tolist()  # Python ints / strs, as pydantic keeps
        strategy = ranked.strategy[row]
        if strategy != "personalized":
            reason = ranked.based_on[row]
            explanation = (f"Popular in your signup genres ({reason.split(': ', 1)[1]})"
                           if strategy == "cold_start_genres" else "Trending now")
            return [_recommendation(i, c, "cold_start", [reason], explanation)
                    for i, c in zip(ids, ranked.relevance[row][valid].tolist(), strict=True)]
        contrib = ranked.contributions[row][:, valid]  # (S, L)
        confidence = np.clip(ranked.relevance[row][valid], 0.0, 1.0).tolist()
        n_sources = len(ranked.sources)
        # one code per item: bit s for "source s contributed > 0", then LoRA raised it,
        # then exactly one nonzero source, then the index of its largest contribution
        bits = np.left_shift(1, np.arange(n_sources))[:, None]
        codes = (((contrib > 0) * bits).sum(axis=0)
                 | ((ranked.lora[row][valid] > 0) << n_sources)
                 | ((np.count_nonzero(contrib, axis=0) == 1) << (n_sources + 1))
                 | (np.argmax(contrib, axis=0) << (n_sources + 2)))
        recs = []
        for item, conf, code in zip(ids, confidence, codes.tolist(), strict=True):
            based_on, kind, explanation = _reason(ranked.sources, code)
            recs.append(_recommendation(item, conf, kind, list(based_on), explanation))
        return recs

    # --- items and scores -------------------------------------------------------------------

    def _item(self, model: LoadedModel, content_id: str) -> int:
        idx = int(model.items.numbers([content_id], missing="negative")[0])
        if idx < 0:
            raise ApiError(404, "not_found", f"unknown content id {content_id!r}",
                           content_id=content_id)
        return idx

    def similar(self, req: SimilarRequest) -> SimilarResponse:
        """The pipeline's similar items (:meth:`Pipeline.similar_items`, the item itself and
        removed items excluded): collaborative cosine between trained items, content cosine
        where a cold catalog item is involved (:mod:`sona.pipeline.cold`)."""
        model = self.store.current
        flt = availability_filter(region=req.region)
        idx = self._item(model, req.content_id)
        item_id = model.items.id(idx)
        with self.metrics.time_source("similar_index"):
            found = model.pipeline.similar_items([item_id], k=req.limit)
        now = datetime.now(UTC)
        where = self.where
        return SimilarResponse(content_id=item_id, similar_content=[
            SimilarItem(content_id=i, score=s,
                        where_to_watch=None if where is None else where.lookup(i, flt, now))
            for i, s in found.row(0)], model_version=model.version)

    def score(self, req: ScoreRequest) -> ScoreResponse:
        """One (user, item) score in [0, 1] with its per-source components.

        The blend of :meth:`Pipeline.blend_states` at the item: each component is the
        source's normalised score (None where the source does not apply to the user), the
        score is the weighted blend times the LoRA boost; a cold user gets the item's
        popularity relative to the most popular item (SPEC §2.8).
        """
        model = self.store.current
        item = self._item(model, req.content_id)
        state = self.personalization.state(model, req.user_id)
        pipeline = model.pipeline
        o = self.overrides
        with self.metrics.time_source("pipeline"):
            mixed = pipeline.blend_states([state], to_context(req.context), o.weight_array(),
                                          o.lora_boost)
        # None where the source does not apply to the user or does not score the item
        comps = {s: float(np.clip(mixed.normalized[0, i, item], 0.0, 1.0))
                 if mixed.weights[0, i] > 0 and not np.isnan(mixed.normalized[0, i, item])
                 else None for i, s in enumerate(SOURCES)}
        lora = float(mixed.lora[0, item])
        if state.is_cold(pipeline.config.cold_start_max_events) or mixed.weights.sum() == 0:
            score = float(pipeline.popularity_share()[item])
        else:
            score = float(mixed.scores[0, item])
        return ScoreResponse(
            user_id=req.user_id, content_id=model.items.id(item),
            score=float(np.clip(score, 0.0, 1.0)),
            components=ScoreComponents(
                collaborative=comps["collaborative"], content_based=comps["content_based"],
                graph_based=comps["graph_based"], context=comps["context"], lora_boost=lora),
            model_version=model.version)

    # --- profile and LoRA -----------------------------------------------------------------

    def update_profile(self, req: ProfileUpdateRequest) -> ProfileUpdateResponse:
        """Store viewing events; the preference vector changes at once."""
        model = self.store.current
        events = [ViewingEvent(e.content_id, e.timestamp.timestamp(), e.completion_rate,
                               e.rating, e.is_rewatch, e.dismissed) for e in req.viewing_events]
        result = self.personalization.update_profile(model, req.user_id, events,
                                                     req.signup_genres)
        return ProfileUpdateResponse(**result)

    def train_lora(self, req: LoraTrainRequest) -> LoraTrainResponse:
        """Train the user's adapter now (400 below 10 events)."""
        model = self.store.current
        result, version = self.personalization.train(model, req.user_id, force=req.force)
        return LoraTrainResponse(status="training_completed", user_id=req.user_id,
                                 duration_ms=result.duration_ms,
                                 training_iterations=result.iterations,
                                 events_used=result.events_used, adapter_version=version,
                                 loss=result.losses[-1])

    # --- probes ---------------------------------------------------------------------------

    def health(self, service_version: str) -> dict[str, Any]:
        """Liveness body (SPEC §2.10) plus the served model version and the answering
        worker process (``worker``: its pid; a server runs ``workers`` of them)."""
        status = self.store.status()
        return {"status": "healthy", "service": "sona-personalization-engine",
                "version": service_version, "model": {"name": status["name"],
                                                      "version": status["version"]},
                "worker": os.getpid()}


_GIVEN = frozenset(("content_id", "confidence_score", "recommendation_type", "based_on",
                    "explanation"))
_set_attr = object.__setattr__


def _recommendation(content_id: int | str, confidence: float, kind: RecommendationType,
                    based_on: list[str], explanation: str) -> Recommendation:
    """``Recommendation(content_id=..., ...)`` of values that already have the types its
    validation gives (a Python int or str id, a float, a list of str), without validating
    them again: :meth:`~pydantic.BaseModel.model_construct`'s own steps for this model
    (no extras, private attributes or post-init), ~4x cheaper than validating each of a
    list's items (issue 12). The test of :meth:`RecsHandler._items` compares the two."""
    rec = Recommendation.__new__(Recommendation)
    _set_attr(rec, "__dict__", {
        "content_id": content_id, "confidence_score": confidence,
        "recommendation_type": kind, "based_on": based_on, "explanation": explanation,
        "experiment_variant": None, "where_to_watch": None})
    _set_attr(rec, "__pydantic_fields_set__", set(_GIVEN))
    _set_attr(rec, "__pydantic_extra__", None)
    _set_attr(rec, "__pydantic_private__", None)
    return rec


@functools.lru_cache(maxsize=4096)
def _reason(sources: tuple[str, ...], code: int
            ) -> tuple[tuple[str, ...], RecommendationType, str]:
    """``(based_on, recommendation_type, explanation)`` of a personalised item whose
    contributions have pattern ``code`` (:meth:`RecsHandler._items`)."""
    n = len(sources)
    based_on = tuple(s for i, s in enumerate(sources) if code >> i & 1)
    if code >> n & 1:
        based_on += ("lora",)
    kind = cast(RecommendationType, LABELS[sources[code >> (n + 2)]]) \
        if code >> (n + 1) & 1 else "hybrid"
    return based_on, kind, ("Based on: " + ", ".join(based_on)) if based_on \
        else "Recommended for you"


__all__ = ["RankOverrides", "RecsConfig", "RecsHandler", "outcome", "to_context"]
