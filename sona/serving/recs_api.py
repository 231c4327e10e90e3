"""Recommendation and personalisation handlers (SPEC §2.10), plain Python, no BentoML.

:class:`RecsHandler` implements the endpoints over the served :class:`LoadedModel`:

1. every :class:`~sona.serving.sources.CandidateSource` scores all items for the batch;
2. the ONNX ranker blends the applicable sources (weights renormalised per user),
   applies the LoRA boost ``·(1 + lora_boost·lora_score)``, masks watched items and keeps
   the top ``pool_size``;
3. MMR re-ranks the pool for diversity (``λ = 1 - diversity_threshold``, default 0.7) and
   cuts to ``limit``; each item says which sources it came from.

Cold users (at most 5 watches) get the explicit cold-start list instead. Everything is
batched: ``/recommendations/batch`` scores many users with one call per graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from sona.profile import ViewingEvent
from sona.serving.errors import ApiError
from sona.serving.metrics import ServingMetrics
from sona.serving.model_store import LoadedModel, ModelStore
from sona.serving.personalization import Personalization
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
from sona.serving.sources import (
    CandidateSource,
    CollaborativeSource,
    ContentSource,
    ContextSource,
    ScoringBatch,
    UserState,
    cold_start,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecsConfig:
    """Hybrid ranking knobs (SPEC §2.7 values; A/B-testable)."""

    # blend weight per candidate source name (renormalised over the sources that apply)
    weights: dict[str, float] = field(default_factory=lambda: {
        "collaborative": 0.35, "content_based": 0.25, "graph_based": 0.30, "context": 0.10})
    # LoRA boost: score *= 1 + lora_boost * lora_score
    lora_boost: float = 0.3
    # MMR relevance weight when the request gives no diversity_threshold
    mmr_lambda: float = 0.7
    # MMR re-ranks the best mmr_pool_factor x limit candidates of the ranker's pool
    mmr_pool_factor: int = 5
    # users with at most this many watches get cold-start results
    cold_start_max_events: int = 5
    # response TTLs in seconds: personalised / trending
    ttl_seconds: int = 3600
    trending_ttl_seconds: int = 1800


def mmr(candidates: NDArray[np.int64], relevance: NDArray[np.floating],
        vectors: NDArray[np.float32], k: int, lam: float) -> NDArray[np.int64]:
    """Greedy maximal marginal relevance: positions into ``candidates``, length <= ``k``.

    Picks ``argmax λ·rel - (1-λ)·max cos(candidate, selected)`` with ``rel`` min-max
    scaled to [0, 1] (Carbonell & Goldstein, SIGIR 1998). One ``(m, D)·(D,)`` product per
    pick keeps it O(k·m·D) for ``m`` candidates.
    """
    n = len(candidates)
    if n == 0 or lam >= 1.0:
        return np.arange(min(k, n))
    rel = np.asarray(relevance, np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones(n)
    vecs = vectors[candidates].astype(np.float32)
    base = lam * rel
    max_sim = np.zeros(n)
    picked = np.empty(min(k, n), np.int64)
    for step in range(len(picked)):
        gain = base - (1.0 - lam) * max_sim
        gain[picked[:step]] = -np.inf
        j = int(np.argmax(gain))
        picked[step] = j
        np.maximum(max_sim, vecs @ vecs[j], out=max_sim)
    return picked


class RecsHandler:
    """The personalisation endpoints over a :class:`ModelStore`.

    Args:
        store: the served model (swapped atomically under us).
        personalization: profiles, adapters, user-state cache.
        metrics: per-source latency metrics.
        config: ranking knobs.
        sources: candidate sources in ranker order (default: collaborative, content,
            context); zoo components append theirs.
    """

    def __init__(self, store: ModelStore, personalization: Personalization,
                 metrics: ServingMetrics, config: RecsConfig = RecsConfig(),
                 sources: list[CandidateSource] | None = None) -> None:
        self.store = store
        self.personalization = personalization
        self.metrics = metrics
        self.config = config
        self.sources: list[CandidateSource] = sources if sources is not None else [
            CollaborativeSource(), ContentSource(), ContextSource()]

    # --- recommendations ------------------------------------------------------------------

    def recommendations(self, req: RecommendationRequest) -> RecommendationResponse:
        """Top-``limit`` items for one user (cold-start list for cold users)."""
        model = self.store.current
        state = self.personalization.state(model, req.user_id)
        return self._lists(model, [state], req.context, req.limit, req.exclude_watched,
                           req.diversity_threshold)[0]

    def batch(self, req: BatchRecommendationRequest) -> BatchRecommendationResponse:
        """Lists for many users in one batched pass per graph (no context)."""
        model = self.store.current
        states = [self.personalization.state(model, u) for u in req.user_ids]
        return BatchRecommendationResponse(results=self._lists(
            model, states, None, req.limit, req.exclude_watched, None))

    def _lists(self, model: LoadedModel, states: list[UserState],
               context: RecommendationContext | None, limit: int, exclude_watched: bool,
               diversity: float | None) -> list[RecommendationResponse]:
        now = datetime.now(UTC)
        out: list[RecommendationResponse | None] = [None] * len(states)
        cold = [s.is_cold(self.config.cold_start_max_events) for s in states]
        warm = [i for i, is_cold in enumerate(cold) if not is_cold]
        for i, s in enumerate(states):
            if cold[i]:
                out[i] = self._cold(model, s, limit, exclude_watched, now)
        if warm:
            lam = self.config.mmr_lambda if diversity is None else 1.0 - diversity
            ranked = self._rank(model, [states[i] for i in warm], context, limit,
                                exclude_watched, lam, now)
            for i, resp in zip(warm, ranked, strict=True):
                out[i] = resp
        return [r for r in out if r is not None]

    def _cold(self, model: LoadedModel, state: UserState, limit: int, exclude_watched: bool,
              now: datetime) -> RecommendationResponse:
        with self.metrics.time_source("cold_start"):
            idx, conf, strategy, based_on = cold_start(model, state, limit,
                                                       exclude_watched=exclude_watched)
        self.metrics.cold_start.labels(strategy).inc()
        explanation = (f"Popular in your signup genres ({based_on.split(': ', 1)[1]})"
                       if strategy == "cold_start_genres" else "Trending now")
        recs = [Recommendation(content_id=model.items.id(int(i)), confidence_score=float(c),
                               recommendation_type="cold_start", based_on=[based_on],
                               explanation=explanation) for i, c in zip(idx, conf, strict=True)]
        trending = strategy == "cold_start_trending"
        ttl = self.config.trending_ttl_seconds if trending else self.config.ttl_seconds
        return RecommendationResponse(
            user_id=state.user_id, recommendations=recs, generated_at=now, ttl_seconds=ttl,
            strategy="cold_start_trending" if trending else "cold_start_genres",
            model_version=model.version)

    def _score_sources(self, model: LoadedModel, states: list[UserState],
                       context: RecommendationContext | None,
                       ) -> tuple[ScoringBatch, NDArray[np.float32], NDArray[np.float32]]:
        """Raw source scores ``(B, S, n)`` and renormalised weights ``(B, S)``."""
        batch = ScoringBatch(model, states, context, self.metrics)
        raw, weights = [], []
        for source in self.sources:
            scores, applies = source.scores(batch)
            raw.append(np.asarray(scores, np.float32))
            weights.append(applies * self.config.weights.get(source.name, 0.0))
        stacked = np.ascontiguousarray(np.stack(raw, axis=1), np.float32)
        w = np.stack(weights, axis=1).astype(np.float64)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        return batch, stacked, w.astype(np.float32)

    def _rank(self, model: LoadedModel, states: list[UserState],
              context: RecommendationContext | None, limit: int, exclude_watched: bool,
              lam: float, now: datetime) -> list[RecommendationResponse]:
        batch, sources, weights = self._score_sources(model, states, context)
        lora = batch.content_and_lora[1]
        exclude = np.zeros((len(states), model.n_items), bool)
        if exclude_watched:
            for row, s in enumerate(states):
                exclude[row, s.watched] = True
        boost = np.full((len(states), 1), self.config.lora_boost, np.float32)
        with self.metrics.time_source("ranker"):
            top_scores, top_idx = model.rank(sources, weights, lora, boost, exclude)
        low = sources.min(axis=2)
        span = sources.max(axis=2) - low
        names = [s.name for s in self.sources]
        labels = [cast(RecommendationType, s.label) for s in self.sources]
        results = []
        for row, state in enumerate(states):
            valid = np.isfinite(top_scores[row])
            # MMR looks at the best mmr_pool_factor x limit candidates, not the whole pool
            keep = min(int(valid.sum()), max(limit * self.config.mmr_pool_factor, limit))
            pool, pool_scores = top_idx[row][valid][:keep], top_scores[row][valid][:keep]
            with self.metrics.time_source("mmr"):
                order = mmr(pool, pool_scores, model.item_vectors, limit, lam)
            chosen = pool[order]
            # per-source contribution of each chosen item, all at once: (S, L)
            norm = np.divide(sources[row][:, chosen] - low[row][:, None], span[row][:, None],
                             out=np.zeros((len(names), len(chosen)), np.float32),
                             where=span[row][:, None] > 0)
            contrib = norm * weights[row][:, None]
            boosted = (lora[row, chosen] > 0) if state.lora_b is not None else \
                np.zeros(len(chosen), bool)
            confidence = np.clip(pool_scores[order], 0.0, 1.0)
            recs = []
            for col, item in enumerate(chosen):
                based_on = [n for n, c in zip(names, contrib[:, col], strict=True) if c > 0]
                if boosted[col]:
                    based_on.append("lora")
                n_sources = int(np.count_nonzero(contrib[:, col]))
                kind: RecommendationType = labels[int(np.argmax(contrib[:, col]))] \
                    if n_sources == 1 else "hybrid"
                recs.append(Recommendation(
                    content_id=model.items.id(int(item)),
                    confidence_score=float(confidence[col]), recommendation_type=kind,
                    based_on=based_on, explanation=("Based on: " + ", ".join(based_on))
                    if based_on else "Recommended for you"))
            results.append(RecommendationResponse(
                user_id=state.user_id, recommendations=recs, generated_at=now,
                ttl_seconds=self.config.ttl_seconds, strategy="personalized",
                model_version=model.version))
        return results

    # --- items and scores -------------------------------------------------------------------

    def _item(self, model: LoadedModel, content_id: str) -> int:
        idx = int(model.items.numbers([content_id], missing="negative")[0])
        if idx < 0:
            raise ApiError(404, "not_found", f"unknown content id {content_id!r}",
                           content_id=content_id)
        return idx

    def similar(self, req: SimilarRequest) -> SimilarResponse:
        """Nearest items in the item vector index (the item itself excluded)."""
        model = self.store.current
        idx = self._item(model, req.content_id)
        vectors = model.item_factors if model.manifest["index_vectors"] == "item_factors" \
            and model.item_factors is not None else model.item_vectors
        query = np.asarray(vectors[idx:idx + 1], np.float32)
        item_id = model.items.id(idx)
        if not np.any(query):
            return SimilarResponse(content_id=item_id, similar_content=[],
                                   model_version=model.version)
        with self.metrics.time_source("similar_index"):
            found = model.index.search(query, req.limit, exclude=np.array([item_id]))
        return SimilarResponse(content_id=item_id, similar_content=[
            SimilarItem(content_id=i, score=s) for i, s in found.row(0)],
            model_version=model.version)

    def score(self, req: ScoreRequest) -> ScoreResponse:
        """One (user, item) score in [0, 1] with its per-source components."""
        model = self.store.current
        item = self._item(model, req.content_id)
        state = self.personalization.state(model, req.user_id)
        batch, sources, weights = self._score_sources(model, [state], req.context)
        lora = float(batch.content_and_lora[1][0, item]) if state.lora_b is not None else 0.0
        comps: dict[str, float | None] = {}
        for s, source in enumerate(self.sources):
            row = sources[0, s]
            lo, span = float(row.min()), float(row.max() - row.min())
            value = (float(row[item]) - lo) / span if span > 0 else 0.0
            comps[source.name] = value if weights[0, s] > 0 else None
        if weights.sum() > 0:
            blend = sum(float(weights[0, s]) * (comps[src.name] or 0.0)
                        for s, src in enumerate(self.sources))
            score = blend * (1.0 + self.config.lora_boost * lora)
        else:  # nothing applies (cold user, no context): relative popularity
            top = float(model.popularity.max(initial=0.0))
            score = float(model.popularity[item]) / top if top > 0 else 0.0
        return ScoreResponse(
            user_id=req.user_id, content_id=model.items.id(item),
            score=float(np.clip(score, 0.0, 1.0)),
            components=ScoreComponents(
                collaborative=comps.get("collaborative"),
                content_based=comps.get("content_based"),
                graph_based=comps.get("graph_based"), context=comps.get("context"),
                lora_boost=lora),
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
        """Liveness body (SPEC §2.10) plus the served model version."""
        status = self.store.status()
        return {"status": "healthy", "service": "sona-personalization-engine",
                "version": service_version, "model": {"name": status["name"],
                                                      "version": status["version"]}}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: a model is loaded and the database answers."""
        checks: dict[str, Any] = {"model": self.store.status()}
        checks["model"]["status"] = "healthy" if self.store.ready else "unhealthy"
        try:
            self.personalization.profiles.event_count("__readiness_probe__")
            checks["database"] = {"status": "healthy"}
        except Exception as exc:  # any driver error means not ready
            checks["database"] = {"status": "unhealthy", "error": str(exc)}
        ok = all(c["status"] == "healthy" for c in checks.values())
        return ok, {"status": "healthy" if ok else "unhealthy", "checks": checks}


__all__ = ["RecsConfig", "RecsHandler", "mmr"]
