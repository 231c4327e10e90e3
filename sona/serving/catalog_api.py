"""Catalog, quality and webhook endpoints (SPEC §3.5, §3.7, §4): schemas and the handler.

:class:`CatalogHandler` is plain Python (no bentoml import); the BentoML service calls one
method per endpoint inside ``SonaApp.dispatch`` with the scope from :data:`ENDPOINT_SCOPES`
(catalog mutations need an ``admin`` API key; webhook intake is authenticated by its HMAC
signature instead). Errors are :class:`~sona.serving.errors.ApiError`: 400 bad input, 404
unknown content, 409 duplicate platform id, webhook rejections with their own status.

Mutations write catalog audit rows (``content_created``/``updated``/``deleted``), re-embed
``title + overview``, push the vector with ``{id, title, genres}`` to the index callback and
emit ``content.created``/``content.updated``/``content.deleted`` events.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from sona.catalog.schema import (
    PLATFORMS,
    Availability,
    ContentItem,
    ContentType,
    ExternalIds,
    Images,
    utcnow,
)
from sona.catalog.store import Actor, CatalogConflictError, CatalogStore
from sona.errors import UnknownIdError
from sona.genres import GENRES, map_genre
from sona.ingest.pipeline import IndexUpdater, embed_items, index_update_for
from sona.ingest.quality import QualityReport, quality_report, quality_score
from sona.ingest.resolution import EntityResolver
from sona.ingest.webhooks import (
    EventView,
    Receipt,
    Registration,
    WebhookError,
    WebhookService,
)
from sona.serving.errors import ApiError
from sona.wire import INT, Bool, DateTime, Number

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
WriteGuard = Callable[[], AbstractContextManager[object]]
"""Entered around every catalog write (``with guard(): ...``)."""

ENDPOINT_SCOPES: dict[str, str | None] = {
    "create_content": "admin", "get_content": "admin", "update_content": "admin",
    "delete_content": "admin", "put_availability": "admin", "quality_report": "read",
    "receive_webhook": None, "register_webhook": "admin", "webhook_stats": "admin",
    "process_webhooks": "admin", "dead_letters": "admin",
}
"""API-key scope each handler method needs (``None``: HMAC-signed webhook intake)."""


#: highest purchase or rental price of an offer (a larger one is a typing error)
MAX_PRICE = 1_000_000.0
#: JSON Schema of a genre list: canonical genres (mapped platform labels are accepted too)
_GENRE_ITEMS: dict[str, Any] = {"items": {"type": "string", "enum": list(GENRES)}}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class ImagesModel(_Model):
    """Artwork URLs of a content request."""

    poster_small: str | None = None
    poster_medium: str | None = None
    poster_large: str | None = None
    backdrop: str | None = None


class CreateContentRequest(_Model):
    """``POST /api/v1/admin/catalog/content`` body (SPEC §3.5)."""

    title: str = Field(min_length=1, max_length=500)
    content_type: ContentType
    platform: str = Field(json_schema_extra={"enum": list(PLATFORMS)})
    platform_content_id: str = Field(min_length=1)
    overview: str | None = None
    release_year: Annotated[int, Field(ge=1870, le=2100), *INT] | None = None
    runtime_minutes: Annotated[int, Field(ge=0, le=100_000), *INT] | None = None
    # canonical or any mapped platform label (the schema lists the canonical ones)
    genres: list[str] = Field(default_factory=list, json_schema_extra=_GENRE_ITEMS)
    rating: Number | None = Field(default=None, ge=0, le=10)  # average rating, 0-10
    images: ImagesModel = Field(default_factory=ImagesModel)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # the null default means "absent"; null itself is refused


class PatchContentRequest(_Model):
    """``PATCH /content/{id}``: only the given fields change (then the item is re-embedded)."""

    # an empty patch is a 400 (empty_patch): the schema says so with minProperties
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # absent: unchanged; an item always has a title, so null is refused (the schema says so)
    title: Annotated[str, Field(min_length=1, max_length=500)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default)
    overview: str | None = None
    genres: list[str] | None = Field(default=None, json_schema_extra=_GENRE_ITEMS)
    rating: Number | None = Field(default=None, ge=0, le=10)
    # null would change nothing (images are replaced key by key): refused like title's
    images: ImagesModel | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)

    @field_validator("title", "images")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # runs only for a given value: leaving the field out keeps it
            raise ValueError(f"{info.field_name} cannot be null; leave it out to keep it")
        return value


class AvailabilityRequest(_Model):
    """``PUT /content/{id}/availability``: replaces one platform's offers.

    ``platform`` is **NEW** (SPEC §3.5 omits it, but an item can be on several platforms);
    it may be left out when the item is offered by exactly one platform.
    """

    platform: Annotated[str, Field(json_schema_extra={"enum": list(PLATFORMS)})] | None = None
    regions: list[Annotated[str, Field(pattern="^[A-Za-z]{2}$")]] = Field(
        default_factory=list, max_length=300, description="ISO 3166-1 alpha-2 codes")
    subscription_required: Bool = False
    purchase_price: Number | None = Field(default=None, ge=0, le=MAX_PRICE)
    rental_price: Number | None = Field(default=None, ge=0, le=MAX_PRICE)
    currency: str = Field("USD", pattern="^[A-Z]{3}$", description="ISO 4217 code")
    available_from: DateTime | None = None
    available_until: DateTime | None = None


class RegisterWebhookRequest(_Model):
    """``POST /api/v1/webhooks/register`` body."""

    platform: str = Field(json_schema_extra={"enum": list(PLATFORMS)})
    secret: str = Field(min_length=16, description="HMAC key: at least 16 characters")
    rate_limit: Annotated[int, Field(ge=1, le=1_000_000), *INT] | None = None
    enabled: Bool = True


class ContentResponse(_Model):
    """A catalog item as the admin API returns it."""

    id: str
    title: str
    content_type: str
    overview: str | None
    release_year: int | None
    runtime_minutes: int | None
    genres: list[str]
    rating: float | None
    images: ImagesModel
    platforms: list[str]
    platform_ids: dict[str, str]
    availability: list[dict[str, Any]]
    data_quality_score: float
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime


class DeleteResponse(_Model):
    """``DELETE /content/{id}`` answer."""

    id: str
    deleted: bool


def _response(item: ContentItem) -> ContentResponse:
    img = item.images
    return ContentResponse(
        id=item.canonical_id, title=item.title, content_type=item.content_type,
        overview=item.overview, release_year=item.release_year,
        runtime_minutes=item.runtime_minutes, genres=list(item.genres),
        rating=item.average_rating,
        images=ImagesModel(poster_small=img.poster_small, poster_medium=img.poster_medium,
                           poster_large=img.poster_large, backdrop=img.backdrop),
        platforms=list(item.source_platforms), platform_ids=dict(item.external_ids.platform_ids),
        availability=[a.model_dump(mode="json") for a in item.availability],
        data_quality_score=item.data_quality_score, embedding_model=item.embedding_model,
        created_at=item.created_at, updated_at=item.updated_at)


def canonical_genres(labels: list[str]) -> list[str]:
    """Labels -> canonical genres (shared mapping); ApiError 400 naming unmappable labels."""
    bad = [label for label in labels if not map_genre(label)]
    if bad:
        raise ApiError(400, "invalid_genre", f"unknown genre(s) {bad}",
                       allowed=list(GENRES))
    found = {g for label in labels for g in map_genre(label)}
    return [g for g in GENRES if g in found]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _write(method: Callable[Concatenate[CatalogHandler, _P], _R]
           ) -> Callable[Concatenate[CatalogHandler, _P], _R]:
    """Run a mutating :class:`CatalogHandler` method inside its ``writes`` guard."""
    @functools.wraps(method)
    def guarded(self: CatalogHandler, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.writes():
            return method(self, *args, **kwargs)
    return guarded


class CatalogHandler:
    """Catalog CRUD, quality report and webhook endpoints.

    Args:
        store: the catalog database.
        encoder: content encoder for re-embedding (``None``: items carry no vectors).
        on_index_update: receives vector upserts/removals (the search index).
        webhooks: the webhook service (intake, queue, stats); ``None`` disables those routes.
        resolver: the resolver shared with the webhook processor, kept in step with CRUD.
        events: sink of ``content.created|updated|deleted`` events.
        writes: entered around every mutating call (CRUD, availability, webhook
            registration and processing), so resolve-then-write sequences never interleave.
            Default: a lock of this handler. The serving app passes a
            :class:`~sona.serving.catalog_writes.CatalogWrites`: serial across the worker
            processes too, and it first teaches the resolver every committed catalog write.
    """

    def __init__(self, store: CatalogStore, *, encoder: Any = None,
                 on_index_update: IndexUpdater | None = None,
                 webhooks: WebhookService | None = None, resolver: EntityResolver | None = None,
                 events: EventSink | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 writes: WriteGuard | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.on_index_update = on_index_update
        self.webhooks = webhooks
        self.resolver = resolver
        self.events = events
        self.clock = clock
        if writes is None:
            lock = threading.Lock()  # the resolver and rate buckets are plain memory

            def writes() -> AbstractContextManager[object]:
                return lock
        self.writes: WriteGuard = writes

    # ---- content CRUD --------------------------------------------------------------------
    @_write
    def create_content(self, req: CreateContentRequest, *,
                       actor: Actor | None = None) -> ContentResponse:
        """Create an item from one platform's listing; 409 when that listing exists."""
        platform = self._platform(req.platform)
        key = f"platform:{platform}"
        existing = self.store.lookup_mapping(req.platform_content_id, key)
        if existing is not None:
            raise ApiError(409, "conflict", f"{platform} content {req.platform_content_id!r} "
                           f"is already catalog item {existing[0]}", id=existing[0])
        now = self.clock()
        item = ContentItem(
            title=req.title, content_type=req.content_type, overview=req.overview,
            release_year=req.release_year, runtime_minutes=req.runtime_minutes,
            genres=canonical_genres(req.genres), average_rating=req.rating,
            images=Images(**req.images.model_dump()),
            external_ids=ExternalIds(platform_ids={platform: req.platform_content_id}),
            source_platforms=[platform], created_at=now, updated_at=now, last_updated=now)
        item = self._finish(item, now)
        try:
            self.store.add(item, actor=actor or Actor())
        except CatalogConflictError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        self.store.upsert_mappings([(req.platform_content_id, key, item.canonical_id, 1.0)])
        self._teach_resolver(item, [(key, req.platform_content_id)])
        self._announce("content.created", item)
        return _response(item)

    def get_content(self, content_id: str) -> ContentResponse:
        """One item; 404 when unknown."""
        return _response(self._get(content_id))

    @_write
    def update_content(self, content_id: str, req: PatchContentRequest, *,
                       actor: Actor | None = None) -> ContentResponse:
        """Patch title/overview/genres/rating/images, then re-embed and re-index."""
        item = self._get(content_id)
        changes: dict[str, Any] = {}
        given = req.model_fields_set
        for name in ("title", "overview"):
            if name in given:
                changes[name] = getattr(req, name)
        if "genres" in given:
            changes["genres"] = canonical_genres(req.genres or [])
        if "rating" in given:
            changes["average_rating"] = req.rating
        if "images" in given and req.images is not None:
            changes["images"] = item.images.model_copy(
                update=req.images.model_dump(exclude_unset=True))
        if not changes:
            raise ApiError(400, "empty_patch", "PATCH needs at least one of title, overview, "
                           "genres, rating, images")
        if changes.get("title") is None and "title" in changes:
            raise ApiError(400, "invalid_request", "title cannot be null")
        now = self.clock()
        updated = self._finish(item.model_copy(update=changes), now)
        self.store.update(content_id, {**changes, "embedding": updated.embedding,
                                       "embedding_model": updated.embedding_model,
                                       "embedding_version": updated.embedding_version,
                                       "data_quality_score": updated.data_quality_score},
                          actor=actor or Actor(), now=now)
        stored = self.store.get(content_id)
        if "title" in changes:
            self._teach_resolver(stored, [])
        self._announce("content.updated", stored, fields=sorted(changes))
        return _response(stored)

    @_write
    def delete_content(self, content_id: str, *, actor: Actor | None = None) -> DeleteResponse:
        """Delete an item, drop it from the index and the resolver."""
        self._get(content_id)
        self.store.delete(content_id, actor=actor or Actor())
        if self.resolver is not None:
            self.resolver.remove_entity(content_id)
        if self.on_index_update is not None:
            self.on_index_update(index_update_for([], None, removed=[content_id]))
        if self.events is not None:
            self.events("content.deleted", {"id": content_id})
        return DeleteResponse(id=content_id, deleted=True)

    @_write
    def put_availability(self, content_id: str, req: AvailabilityRequest, *,
                         actor: Actor | None = None) -> ContentResponse:
        """Replace one platform's offers of an item (SPEC §3.5)."""
        item = self._get(content_id)
        if req.platform is None:
            if len(item.source_platforms) != 1:
                raise ApiError(400, "platform_required", "the item is on "
                               f"{item.source_platforms or 'no platform'}; name the platform")
            platform = item.source_platforms[0]
        else:
            platform = self._platform(req.platform)
        if req.available_from and req.available_until and req.available_until < req.available_from:
            raise ApiError(400, "invalid_window", "available_until is before available_from")
        common: dict[str, Any] = {
            "platform": platform, "currency": req.currency,
            "regions": [r.upper() for r in req.regions],
            "available_from": req.available_from, "available_until": req.available_until}
        kinds: list[tuple[str, float | None]] = (
            [("subscription", None)] if req.subscription_required else [])
        kinds += [(k, p) for k, p in (("rental", req.rental_price),
                                      ("purchase", req.purchase_price)) if p is not None]
        offers = [Availability.model_validate(
            {**common, "availability_type": kind,
             "price_cents": None if price is None else round(price * 100)})
            for kind, price in kinds or [("free", None)]]
        updated = self.store.set_availability(content_id, platform, offers, actor=actor or Actor())
        self._announce("content.updated", updated, fields=["availability"], reindex=False)
        return _response(updated)

    # ---- quality -------------------------------------------------------------------------
    def quality_report(self, threshold: float = 0.6, limit: int = 100) -> QualityReport:
        """``GET /quality/report``: items below ``threshold`` as of now, worst first."""
        if not 0.0 <= threshold <= 1.0 or not 0 <= limit <= 10_000:
            raise ApiError(400, "invalid_request",
                           f"threshold must be in [0, 1] and limit in [0, 10000], "
                           f"got {threshold}, {limit}")
        return quality_report(self.store.iter_items(), now=self.clock(), threshold=threshold,
                              limit=limit)

    # ---- webhooks ------------------------------------------------------------------------
    def receive_webhook(self, platform: str, body: bytes, signature: str | None) -> Receipt:
        """``POST /api/v1/webhooks/{platform}``: verify, dedup, enqueue (202 semantics)."""
        return self._hook(lambda w: w.receive(platform, body, signature))

    @_write
    def register_webhook(self, req: RegisterWebhookRequest, *,
                         actor: Actor | None = None) -> Registration:
        """``POST /api/v1/webhooks/register`` -> ``{webhook_url, ...}``."""
        return self._hook(lambda w: w.register(req.platform, req.secret,
                                               rate_limit=req.rate_limit, enabled=req.enabled,
                                               actor=actor))

    def webhook_stats(self) -> dict[str, Any]:
        """``GET /api/v1/webhooks/stats``: queue depth per status/platform and counters."""
        return self._hook(lambda w: w.stats())

    @_write
    def process_webhooks(self, limit: int = 100) -> dict[str, int]:
        """Drain up to ``limit`` due events through the pipeline (admin / scheduler)."""
        return self._hook(lambda w: w.process_due(limit))

    def dead_letters(self, limit: int = 100) -> list[EventView]:
        """Dead-lettered webhook events, newest first."""
        return self._hook(lambda w: w.dead_letters(limit))

    # ---- helpers -------------------------------------------------------------------------
    def _hook(self, call: Callable[[WebhookService], Any]) -> Any:
        if self.webhooks is None:
            raise ApiError(503, "webhooks_disabled", "this server has no webhook service")
        try:
            return call(self.webhooks)
        except WebhookError as exc:
            raise ApiError(exc.status, exc.error, str(exc)) from exc

    def _get(self, content_id: str) -> ContentItem:
        try:
            return self.store.get(content_id)
        except UnknownIdError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc

    @staticmethod
    def _platform(platform: str) -> str:
        if platform not in PLATFORMS:
            raise ApiError(400, "invalid_platform", f"unknown platform {platform!r}",
                           allowed=list(PLATFORMS))
        return platform

    def _teach_resolver(self, item: ContentItem, ids: list[tuple[str, str]]) -> None:
        if self.resolver is None:
            return
        vectors = self.resolver.encode_titles([item.title])
        self.resolver.add_entity(item.canonical_id, [item.title], [item.release_year], ids,
                                 vector=None if vectors is None else vectors[0])

    def _finish(self, item: ContentItem, now: datetime) -> ContentItem:
        item = ContentItem.model_validate(item.model_dump())
        item.data_quality_score = round(quality_score(item, now=now).score, 6)
        embed_items([item], self.encoder)
        return item

    def _announce(self, event: str, item: ContentItem, *, fields: list[str] | None = None,
                  reindex: bool = True) -> None:
        if reindex and self.on_index_update is not None:
            vectors = (None if item.embedding is None
                       else np.asarray([item.embedding], np.float32))
            self.on_index_update(index_update_for([item], vectors))
        if self.events is not None:
            payload: dict[str, Any] = {"id": item.canonical_id, "title": item.title}
            if fields is not None:
                payload["fields"] = fields
            self.events(event, payload)


__all__ = [
    "ENDPOINT_SCOPES", "AvailabilityRequest", "CatalogHandler", "ContentResponse",
    "CreateContentRequest", "DeleteResponse", "ImagesModel", "PatchContentRequest",
    "RegisterWebhookRequest", "canonical_genres",
]
