"""A/B experiment endpoints (SPEC §2.9-2.10): CRUD, status, metrics, events, and the
experiment-aware ``/api/v1/recommendations``. Plain Python, no BentoML import.

:meth:`ExperimentsHandler.recommendations` finds the first running experiment that takes
the user (sticky assignment, :mod:`sona.ab.assignment`), serves the list through that
variant's config (model version or alias, hybrid weights, MMR λ, LoRA boost, epsilon-greedy
exploration), tags every item ``"experiment:variant"`` and logs one exposure with each
item's position, score and propensity. Users in no experiment get the plain list. If the
experiment store fails, the user gets the plain list too (logged): the store must never
take recommendations down.

Across worker processes (issue 12): each worker caches the running experiments (with their
arms) and one ranker per arm. Every create, edit, status move and deletion bumps the shared
version ``experiments`` after it commits, and a worker re-reads the running list when that
version moved, so a start, pause or stop in one worker applies in the others at the next
request. Arms never change once created (an edit of a draft replaces them with new ids), so
the rankers cached per arm id need no invalidation. Assignment is a hash of the
experiment's salt and the user (:mod:`sona.ab.assignment`) stored once in the shared
database: every worker puts a user in the same arm.

Schemas live here too; requests forbid unknown fields (a typo is a 400 naming it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from sona.ab.ope import explore_list
from sona.ab.records import (
    STATUSES,
    DuplicateNameError,
    Experiment,
    ExposedItem,
    OutcomeEvent,
    StateError,
    Variant,
    VariantSpec,
)
from sona.ab.repository import ExperimentRepository
from sona.serving.audit import AuditLog
from sona.serving.errors import ApiError
from sona.serving.model_store import ModelStore, registry_resolver
from sona.serving.recs_api import RankOverrides, RecsHandler, outcome
from sona.serving.schemas import RecommendationRequest, RecommendationResponse, UserId
from sona.shared import SharedState
from sona.wire import INT, NOT_BLANK, Number, Timestamp

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

log = logging.getLogger(__name__)

MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

#: shared-version domain of the experiment store, bumped after each committed change
EXPERIMENTS_DOMAIN = "experiments"


@dataclass(frozen=True, slots=True)
class ExperimentsConfig:
    """Where the A/B store lives and how often serving re-reads running experiments."""

    # SQLAlchemy URL; None: $SONA_DB_URL, else <data_dir>/experiments.db
    url: str | None = None
    # folder of the default SQLite file; None: the folder of the serving database
    data_dir: str | None = None
    # seconds a worker caches the list of running experiments; changes made through any
    # worker of the server apply at once (a shared version), this bounds only those made
    # elsewhere (another server on the same database, direct SQL)
    cache_ttl_s: float = 1.0


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re", str_strip_whitespace=True)


class VariantIn(_Request):
    """One arm: name, weight (weights sum to 1), serving config (see VariantConfig)."""

    name: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    weight: Number = Field(ge=0.0, le=1.0)
    config: dict[str, Any] = Field(default_factory=dict)


class CreateExperimentRequest(_Request):
    """``POST /api/v1/experiments``."""

    name: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)
    description: str | None = Field(None, max_length=2000)
    traffic_allocation: Number = Field(1.0, gt=0.0, le=1.0)
    variants: list[VariantIn] = Field(min_length=2, max_length=20)
    primary_metric: MetricName = "click"


class UpdateExperimentRequest(_Request):
    """``PATCH /api/v1/experiments/{id}`` (structure only while draft)."""

    description: str | None = Field(None, max_length=2000)
    traffic_allocation: Number | None = Field(None, gt=0.0, le=1.0)
    variants: list[VariantIn] | None = Field(None, min_length=2, max_length=20)
    primary_metric: MetricName | None = None


class StatusRequest(_Request):
    """``PUT /api/v1/experiments/{id}/status``; checked by the handler (SPEC error body)."""

    # the schema lists the statuses; any other string still reaches the handler, which
    # answers the SPEC body (400 "Invalid status" with valid_statuses)
    status: str = Field(max_length=32, json_schema_extra={"enum": list(STATUSES)})


class EventIn(_Request):
    """One outcome; ``timestamp`` ISO-8601 or Unix seconds (default: when received)."""

    event_id: str = Field(min_length=1, max_length=128, pattern=NOT_BLANK)
    user_id: UserId
    metric: MetricName
    value: Number = 1.0
    item_id: UserId | None = None
    position: Annotated[int, Field(ge=0, le=1000), *INT] | None = None
    exposure_id: str | None = Field(None, max_length=36)
    experiment_id: str | None = Field(None, max_length=36)
    timestamp: Timestamp | None = None
    metadata: dict[str, Any] | None = None


class EventsRequest(_Request):
    """``POST /api/v1/events``: a batch, idempotent by ``event_id``."""

    events: list[EventIn] = Field(min_length=1, max_length=1000)


class ConversionRequest(_Request):
    """``POST /api/v1/experiments/conversions`` (SPEC §2.10 single conversion)."""

    experiment_id: str | None = Field(None, max_length=36)
    user_id: UserId
    metric_name: MetricName
    value: Number = 1.0
    metadata: dict[str, Any] | None = None
    event_id: str | None = Field(None, max_length=128)


class ExperimentRecommendationResponse(RecommendationResponse):
    """A recommendation list plus the experiment exposure it was logged as."""

    experiment_id: str | None = None
    exposure_id: str | None = None


def _specs(variants: list[VariantIn]) -> list[VariantSpec]:
    return [VariantSpec(v.name, v.weight, v.config) for v in variants]


class ExperimentsHandler:
    """Experiments over an :class:`ExperimentRepository`, serving through per-variant rankers.

    Args:
        repo: the A/B store.
        recs: the serving handler (its store, personalisation and config are the defaults).
        store_for: builds the :class:`ModelStore` of a pinned version or an alias.
        cache_ttl_s: seconds the running-experiment list is cached.
        audit: where creations, changes, status moves and deletions are recorded.
        shared: the versions shared with the server's other workers: the running list is
            re-read once any worker changed an experiment (module docstring).
    """

    def __init__(self, repo: ExperimentRepository, recs: RecsHandler,
                 store_for: Callable[[str | None, str | None], ModelStore] | None = None, *,
                 cache_ttl_s: float = 1.0, audit: AuditLog | None = None,
                 shared: SharedState | None = None) -> None:
        self.repo = repo
        self.recs = recs
        self.store_for = store_for
        self.cache_ttl_s = cache_ttl_s
        self.audit = audit
        self.shared = shared
        # (monotonic time, shared version when read, running experiments)
        self._running: tuple[float, int, list[Experiment]] = (-1.0, -1, [])
        self._handlers: dict[str, RecsHandler] = {}
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()

    @classmethod
    def for_app(cls, app: SonaApp) -> ExperimentsHandler:
        """Wire the handler into a :class:`~sona.serving.app.SonaApp` (its config and recs)."""
        from pathlib import Path

        cfg = app.config
        exp_cfg: ExperimentsConfig = getattr(cfg, "experiments", ExperimentsConfig())
        data_dir = exp_cfg.data_dir or str(Path(cfg.database).resolve().parent)

        def store_for(version: str | None, alias: str | None) -> ModelStore:
            resolver = None if alias is None else registry_resolver(cfg.tracking,
                                                                     cfg.model_name, alias)
            store = ModelStore(cfg.models_dir, cfg.model_name, resolver=resolver,
                               onnx_threads=cfg.onnx_threads)
            chosen = version if version is not None else store.resolve()
            if chosen is None:
                raise ApiError(503, "model_unavailable",
                               f"registered model {cfg.model_name!r} has no alias {alias!r}")
            store.load(chosen)
            return store

        return cls(ExperimentRepository(exp_cfg.url, data_dir=data_dir), app.recs, store_for,
                   cache_ttl_s=exp_cfg.cache_ttl_s, audit=app.audit, shared=app.shared)

    def _record(self, action: str, experiment_id: str, **details: Any) -> None:
        if self.audit is not None:
            self.audit.record(action, "experiment", experiment_id, details=details)

    # --- CRUD and lifecycle ----------------------------------------------------------------

    def _get(self, key: str) -> Experiment:
        return self.repo.get(key)  # UnknownIdError -> 404 in SonaApp.dispatch

    def create(self, req: CreateExperimentRequest) -> dict[str, Any]:
        """Create a draft; ``{experiment_id, name, status, variants: <count>}``."""
        try:
            exp = self.repo.create_experiment(
                req.name, _specs(req.variants), description=req.description,
                traffic_allocation=req.traffic_allocation, primary_metric=req.primary_metric)
        except DuplicateNameError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        self._forget()
        self._record("experiment_created", exp.id, name=exp.name,
                     variants={v.name: v.weight for v in exp.variants})
        return {"experiment_id": exp.id, "name": exp.name, "status": exp.status,
                "variants": len(exp.variants)}

    def list_experiments(self, status: str | None = None) -> dict[str, Any]:
        """``{experiments: [...with variants], count}``."""
        found = [e.to_dict() for e in self.repo.list_experiments(status)]
        return {"experiments": found, "count": len(found)}

    def get(self, key: str) -> dict[str, Any]:
        """One experiment with its variants."""
        return self._get(key).to_dict()

    def update(self, key: str, req: UpdateExperimentRequest) -> dict[str, Any]:
        """Change a draft (description at any time); 409 when started."""
        try:
            exp = self.repo.update_experiment(
                key, description=req.description, traffic_allocation=req.traffic_allocation,
                variants=None if req.variants is None else _specs(req.variants),
                primary_metric=req.primary_metric)
        except StateError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        self._forget()
        self._record("experiment_updated", exp.id,
                     fields=sorted(req.model_dump(exclude_none=True)))
        return exp.to_dict()

    def delete(self, key: str) -> dict[str, Any]:
        """Delete a draft; 409 otherwise."""
        try:
            self.repo.delete_experiment(key)
        except StateError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        self._forget()
        self._record("experiment_deleted", key)
        return {"experiment_id": key, "deleted": True}

    def set_status(self, key: str, req: StatusRequest) -> dict[str, Any]:
        """``{experiment_id, status}``; 400 for an unknown status, 409 for a bad move."""
        if req.status not in STATUSES:
            raise ApiError(400, "Invalid status", f"unknown status {req.status!r}",
                           valid_statuses=list(STATUSES))
        before = self._get(key)
        try:
            exp = self.repo.set_status(key, req.status)
        except StateError as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from exc
        self._forget()
        if exp.status != before.status:
            self._record("experiment_status_changed", exp.id, name=exp.name,
                         **{"from": before.status, "to": exp.status})
        return {"experiment_id": exp.id, "status": exp.status}

    def metrics(self, key: str) -> dict[str, Any]:
        """SPEC per-variant metrics: exposures, unique users, per-metric counts."""
        return {"variant_metrics": self.repo.metrics_summary(self._get(key)),
                "computed_at": time.time()}

    def report(self, key: str, metric: str | None = None) -> dict[str, Any]:
        """The full analysis (:func:`sona.ab.analysis.analyze`) as JSON."""
        from sona.ab.analysis import analyze

        return analyze(self.repo, self._get(key).id, metric=metric).to_dict()

    # --- events -------------------------------------------------------------------------------

    def events(self, req: EventsRequest) -> dict[str, Any]:
        """Record a batch (one transaction); per-event status in request order."""
        results = self.repo.record_events([OutcomeEvent(
            e.event_id, e.user_id, e.metric, e.value, e.item_id, e.position, e.exposure_id,
            e.experiment_id, None if e.timestamp is None else e.timestamp.timestamp(),
            e.metadata) for e in req.events])
        counts = {s: sum(r.status == s for r in results)
                  for s in ("recorded", "duplicate", "rejected")}
        return {"received": len(results), **counts, "results": [
            {k: v for k, v in (("event_id", r.event_id), ("status", r.status),
                               ("experiment_id", r.experiment_id), ("variant", r.variant),
                               ("reason", r.reason)) if v is not None} for r in results]}

    def conversion(self, req: ConversionRequest) -> dict[str, Any]:
        """One conversion (SPEC); 400 ``User not in experiment`` when unattributed."""
        import uuid

        event_id = req.event_id or str(uuid.uuid4())
        result = self.repo.record_events([OutcomeEvent(
            event_id, req.user_id, req.metric_name, req.value,
            experiment_id=req.experiment_id, metadata=req.metadata)])[0]
        if result.status == "rejected" or result.experiment_id is None:
            # an unattributed row stays stored: it is pre-period history for CUPED
            raise ApiError(400, "User not in experiment", result.reason or
                           f"user {req.user_id!r} is in no running experiment")
        return {"status": "recorded", "event_id": event_id, "experiment_id": result.experiment_id,
                "variant": result.variant, "metric": req.metric_name, "value": req.value}

    # --- serving ------------------------------------------------------------------------------

    def _forget(self) -> None:
        """After a committed change: every worker re-reads the running list (this one too)."""
        if self.shared is not None:
            self.shared.bump(EXPERIMENTS_DOMAIN)
        with self._lock:
            self._running = (-1.0, -1, [])

    def running(self) -> list[Experiment]:
        """Running experiments: cached until any worker changes one (the shared version),
        at most ``cache_ttl_s``."""
        # read before the store: a change committed meanwhile moves it past what is cached
        version = self.shared.version(EXPERIMENTS_DOMAIN) if self.shared is not None else 0
        stamp, seen, found = self._running
        now = time.monotonic()
        if seen == version and now - stamp < self.cache_ttl_s:
            return found
        found = self.repo.running_experiments()
        self._running = (now, version, found)
        return found

    def handler_for(self, variant: Variant) -> RecsHandler:
        """The ranker of ``variant``: serving defaults overridden by its config (cached)."""
        with self._lock:
            found = self._handlers.get(variant.id)
        if found is not None:
            return found
        c = variant.config
        overrides = RankOverrides(weights=dict(c.weights) if c.weights is not None else None,
                                  mmr_lambda=c.mmr_lambda, lora_boost=c.lora_boost)
        store = self.recs.store
        if c.model_version is not None or c.model_alias is not None:
            if self.store_for is None:
                raise ApiError(503, "model_unavailable", "this server cannot load other versions")
            store = self.store_for(c.model_version, c.model_alias)
        handler = RecsHandler(store, self.recs.personalization, self.recs.metrics,
                              self.recs.config, overrides, breaker=self.recs.breaker,
                              timeout_s=self.recs.timeout_s, where=self.recs.where)
        with self._lock:
            self._handlers.setdefault(variant.id, handler)
            return self._handlers[variant.id]

    def recommendations(self, req: RecommendationRequest) -> RecommendationResponse:
        """Recommendations through the user's variant, logged as an exposure."""
        return outcome(self.recommendations_many([req])[0])

    def recommendations_many(self, reqs: Sequence[RecommendationRequest]
                             ) -> list[RecommendationResponse | Exception]:
        """:meth:`recommendations` of each request, the requests of one ranker (serving
        defaults or one variant) ranked together (:meth:`RecsHandler.recommendations_many`);
        a failed request gets its exception in its slot."""
        out: list[RecommendationResponse | Exception | None] = [None] * len(reqs)
        routed: list[tuple[Experiment, Variant] | None] = [None] * len(reqs)
        groups: dict[int, tuple[RecsHandler, list[int], list[RecommendationRequest]]] = {}
        for i, req in enumerate(reqs):
            try:
                chosen = self._route(req)
                handler, ask = (self.recs, req) if chosen is None else (
                    self.handler_for(chosen[1]), self._ask(chosen[1], req))
            except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                out[i] = exc
                continue
            routed[i] = chosen
            group = groups.setdefault(id(handler), (handler, [], []))
            group[1].append(i)
            group[2].append(ask)
        for handler, rows, asks in groups.values():
            for i, resp in zip(rows, handler.recommendations_many(asks), strict=True):
                chosen = routed[i]
                if isinstance(resp, Exception) or chosen is None:
                    out[i] = resp
                    continue
                try:
                    out[i] = self._serve(chosen[0], chosen[1], reqs[i], resp)
                except Exception as exc:  # noqa: BLE001
                    out[i] = exc
        return [r if r is not None else RuntimeError("request not served") for r in out]

    def _route(self, req: RecommendationRequest) -> tuple[Experiment, Variant] | None:
        """The running experiment and variant ``req``'s user is in (None: none)."""
        try:
            for exp in self.running():
                variant = self.repo.assign(exp, req.user_id)
                if variant is not None:
                    return exp, variant
        except SQLAlchemyError:
            log.exception("experiment store failed; serving %s without experiments", req.user_id)
        return None

    @staticmethod
    def _ask(variant: Variant, req: RecommendationRequest) -> RecommendationRequest:
        """What ``variant``'s ranker is asked for ``req``."""
        c = variant.config
        ask = req
        if c.mmr_lambda is not None:
            ask = ask.model_copy(update={"diversity_threshold": None})
        if c.explore_epsilon > 0:
            ask = ask.model_copy(update={"limit": max(req.limit, min(c.explore_pool, 100))})
        return ask

    def _serve(self, exp: Experiment, variant: Variant, req: RecommendationRequest,
               resp: RecommendationResponse) -> ExperimentRecommendationResponse:
        """``resp`` (the variant's list) cut to ``req.limit``, tagged, logged as an exposure."""
        c = variant.config
        recs = resp.recommendations
        if c.explore_epsilon > 0:
            picks, props = explore_list(len(recs), req.limit, c.explore_epsilon, self._rng)
            recs = [recs[i] for i in picks]
        else:
            recs, props = recs[:req.limit], [1.0] * min(req.limit, len(recs))
        tag = f"{exp.name}:{variant.name}"
        recs = [r.model_copy(update={"experiment_variant": tag}) for r in recs]
        items = [ExposedItem(str(r.content_id), pos, float(r.confidence_score), p)
                 for pos, (r, p) in enumerate(zip(recs, props, strict=True))]
        try:
            exposure_id = self.repo.record_exposure(exp, variant, req.user_id, items,
                                                    model_version=resp.model_version)
        except SQLAlchemyError:
            log.exception("could not log the exposure of %s in %s", req.user_id, exp.name)
            exposure_id = None
        return ExperimentRecommendationResponse(
            **{**resp.model_dump(), "recommendations": recs}, experiment_id=exp.id,
            exposure_id=exposure_id)

    def close(self) -> None:
        """Release the store's connections."""
        self.repo.close()


__all__ = [
    "EXPERIMENTS_DOMAIN", "ConversionRequest", "CreateExperimentRequest", "EventIn",
    "EventsRequest",
    "ExperimentRecommendationResponse", "ExperimentsConfig", "ExperimentsHandler",
    "StatusRequest", "UpdateExperimentRequest", "VariantIn",
]
