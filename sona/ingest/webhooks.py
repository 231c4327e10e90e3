"""Platform webhooks: signed intake, 24 h idempotency, a durable queue and dead letters (SPEC §4).

Flow: ``receive(platform, body, signature)`` checks the registration, the rate limit and
the ``sha256=<hex>`` HMAC-SHA256 of the raw body (constant-time compare), parses the JSON
event and drops it as a duplicate when the same event hash arrived in the last 24 h; else it
is stored ``pending`` in the catalog database (``webhook_events``: no Redis needed).
``process_due()`` runs pending/failed events through :class:`EventProcessor`: re-normalise,
re-resolve, merge into the catalog item, re-embed and call the index-update callback (the
wiring the original never finished). A failure is retried with exponential backoff; after
``max_attempts`` the event is ``dead_lettered``. Malformed payloads (``DataError``) cannot
succeed on retry and are dead-lettered at once.

Event body: ``{"event_type": "content_added" | "content_updated" | "availability_changed" |
"content_removed", "data": <raw platform record>}``; ``content_removed`` carries
``{"platform_content_id": ...}`` instead of ``data``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from sona.catalog.models import WebhookEventRow, WebhookRegistrationRow
from sona.catalog.schema import PLATFORMS, utcnow
from sona.catalog.store import Actor, CatalogStore
from sona.errors import DataError, SonaError
from sona.ingest.processor import EVENT_TYPES, EventProcessor

log = logging.getLogger(__name__)

STATUSES = ("pending", "processing", "completed", "failed", "dead_lettered")


class WebhookError(SonaError):
    """A rejected webhook request; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, error: str, message: str) -> None:
        self.status = status
        self.error = error
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Queue, retry and intake settings."""

    max_attempts: int = 3  # processing attempts before an event is dead-lettered
    retry_base_s: float = 2.0  # backoff before attempt n+1 = retry_base_s * 2**(n-1) seconds
    dedup_window_s: float = 86_400.0  # identical events within this window are duplicates
    default_rate_limit: int = 100  # events per minute when a registration gives none
    max_body_bytes: int = 1_000_000  # larger bodies are rejected (413)
    url_prefix: str = "/api/v1/webhooks"  # public path of the receive endpoint


class Registration(BaseModel):
    """Answer of ``register``: where the platform must post."""

    platform: str
    webhook_url: str
    rate_limit: int
    enabled: bool


class Receipt(BaseModel):
    """Answer of ``receive``."""

    status: str  # "queued" | "duplicate"
    event_id: str
    event_hash: str


class EventView(BaseModel):
    """A queued event as shown by ``dead_letters``/``event``."""

    id: str
    platform: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    entity_id: str | None
    received_at: datetime


def sign(secret: str, body: bytes) -> str:
    """The signature header value a platform sends: ``sha256=<hex HMAC-SHA256(body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex>`` of ``body`` under ``secret`` (constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def event_hash(platform: str, payload: dict[str, Any]) -> str:
    """Idempotency key: sha256 of the platform and the canonical JSON of the event."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{platform}\n{canonical}".encode()).hexdigest()


class _Bucket:
    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class WebhookService:
    """Registrations, intake, queue processing and statistics (see module docstring).

    Args:
        store: catalog database holding registrations and the event queue.
        processor: runs one event through the pipeline (omit for intake-only services).
        clock: wall clock (UTC) for dedup windows and backoff; ``monotonic`` for rate limits.
    """

    def __init__(self, store: CatalogStore, processor: EventProcessor | None = None, *,
                 config: WebhookConfig | None = None, clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.processor = processor
        self.config = config or WebhookConfig()
        self.clock = clock
        self.monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self.counters = {"received": 0, "duplicates": 0, "rejected_signature": 0,
                         "rate_limited": 0, "invalid": 0}

    # ---- registration ------------------------------------------------------------------
    def register(self, platform: str, secret: str, *, rate_limit: int | None = None,
                 enabled: bool = True, actor: Actor | None = None) -> Registration:
        """Create or replace a platform's registration (audited as ``admin_action``).

        Raises:
            WebhookError: unknown platform, empty/short secret or non-positive rate limit (400).
        """
        if platform not in PLATFORMS:
            raise WebhookError(400, "unknown_platform",
                               f"unknown platform {platform!r}; expected one of {list(PLATFORMS)}")
        if len(secret) < 16:
            raise WebhookError(400, "weak_secret", "webhook secret must have >= 16 characters")
        limit = self.config.default_rate_limit if rate_limit is None else int(rate_limit)
        if limit < 1:
            raise WebhookError(400, "invalid_rate_limit", f"rate_limit must be >= 1, got {limit}")
        now = self.clock()
        with self.store.session() as sess:
            row = sess.get(WebhookRegistrationRow, platform)
            if row is None:
                sess.add(WebhookRegistrationRow(platform=platform, secret=secret, rate_limit=limit,
                                                enabled=enabled, created_at=now, updated_at=now))
            else:
                row.secret, row.rate_limit, row.enabled = secret, limit, enabled
                row.updated_at = now
        self._buckets.pop(platform, None)
        self.store.audit("admin_action", "webhook", platform,
                         {"op": "register", "rate_limit": limit, "enabled": enabled},
                         actor=actor or Actor())
        return Registration(platform=platform, webhook_url=f"{self.config.url_prefix}/{platform}",
                            rate_limit=limit, enabled=enabled)

    # ---- intake ------------------------------------------------------------------------
    def receive(self, platform: str, body: bytes, signature: str | None) -> Receipt:
        """Verify and enqueue one webhook request (see module docstring).

        Raises:
            WebhookError: 404 unregistered platform, 403 disabled, 413 too large,
                401 bad signature, 429 rate limited, 400 malformed event.
        """
        with self.store.session() as sess:
            reg = sess.get(WebhookRegistrationRow, platform)
            secret, limit, enabled = (None, 0, False) if reg is None else (
                reg.secret, reg.rate_limit, reg.enabled)
        if secret is None:
            raise WebhookError(404, "unknown_webhook", f"no webhook registered for {platform!r}")
        if not enabled:
            raise WebhookError(403, "webhook_disabled", f"webhook of {platform!r} is disabled")
        if len(body) > self.config.max_body_bytes:
            raise WebhookError(413, "payload_too_large",
                               f"body has {len(body)} bytes; limit {self.config.max_body_bytes}")
        if not verify_signature(secret, body, signature):
            self.counters["rejected_signature"] += 1
            raise WebhookError(401, "invalid_signature",
                               "X-Hub-Signature-256 must be sha256=<hex HMAC-SHA256 of the body>")
        bucket = self._buckets.get(platform)
        if bucket is None or bucket.capacity != limit:
            bucket = self._buckets[platform] = _Bucket(limit, self.monotonic)
        if not bucket.take():
            self.counters["rate_limited"] += 1
            raise WebhookError(429, "rate_limited", f"{platform} exceeded {limit} events/minute")
        payload = self._parse(body)
        digest = event_hash(platform, payload)
        now = self.clock()
        since = now - timedelta(seconds=self.config.dedup_window_s)
        with self.store.session() as sess:
            dup = sess.scalar(select(WebhookEventRow).where(
                WebhookEventRow.event_hash == digest, WebhookEventRow.received_at >= since))
            if dup is not None:
                self.counters["duplicates"] += 1
                return Receipt(status="duplicate", event_id=dup.id, event_hash=digest)
            event_id = str(uuid.uuid4())
            sess.add(WebhookEventRow(id=event_id, event_hash=digest, platform=platform,
                                     event_type=payload["event_type"], payload=payload,
                                     status="pending", attempts=0, received_at=now,
                                     next_attempt_at=now))
        self.counters["received"] += 1
        return Receipt(status="queued", event_id=event_id, event_hash=digest)

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.counters["invalid"] += 1
            raise WebhookError(400, "invalid_json", f"body is not JSON: {exc}") from None
        kind = payload.get("event_type") if isinstance(payload, dict) else None
        if kind not in EVENT_TYPES:
            self.counters["invalid"] += 1
            raise WebhookError(400, "invalid_event",
                               f"event_type must be one of {list(EVENT_TYPES)}, got {kind!r}")
        return payload

    # ---- processing --------------------------------------------------------------------
    def process_due(self, limit: int = 100) -> dict[str, int]:
        """Process up to ``limit`` due events; returns counts per outcome status.

        Raises:
            SonaError: the service was built without a processor.
        """
        if self.processor is None:
            raise SonaError("WebhookService has no EventProcessor; pass processor= to process")
        now = self.clock()
        with self.store.session() as sess:
            rows = sess.scalars(select(WebhookEventRow).where(
                WebhookEventRow.status.in_(("pending", "failed")),
                WebhookEventRow.next_attempt_at <= now,
            ).order_by(WebhookEventRow.received_at).limit(limit)).all()
            for row in rows:
                row.status = "processing"
            batch = [(r.id, r.platform, r.event_type, dict(r.payload)) for r in rows]
        outcome = {"completed": 0, "failed": 0, "dead_lettered": 0}
        for event_id, platform, kind, payload in batch:
            try:
                entity_id = self.processor.process(platform, kind, payload)
            except Exception as exc:  # any failure is retried, then dead-lettered
                outcome[self._failed(event_id, exc)] += 1
                continue
            with self.store.session() as sess:
                done = sess.get(WebhookEventRow, event_id)
                assert done is not None  # the row was claimed above
                done.status, done.entity_id, done.completed_at = (
                    "completed", entity_id, self.clock())
                done.attempts += 1
            outcome["completed"] += 1
        return outcome

    def _failed(self, event_id: str, exc: Exception) -> str:
        permanent = isinstance(exc, DataError)
        with self.store.session() as sess:
            row = sess.get(WebhookEventRow, event_id)
            assert row is not None
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if permanent or row.attempts >= self.config.max_attempts:
                row.status = "dead_lettered"
            else:
                row.status = "failed"
                delay = self.config.retry_base_s * 2 ** (row.attempts - 1)
                row.next_attempt_at = self.clock() + timedelta(seconds=delay)
            status = row.status
        log.warning("webhook event %s %s after attempt: %s", event_id, status, exc)
        return status

    def requeue(self, event_id: str) -> None:
        """Send a dead-lettered event back to the queue with a fresh attempt budget.

        Raises:
            WebhookError: no such dead-lettered event (404).
        """
        with self.store.session() as sess:
            row = sess.get(WebhookEventRow, event_id)
            if row is None or row.status != "dead_lettered":
                raise WebhookError(404, "not_found", f"no dead-lettered event {event_id!r}")
            row.status, row.attempts, row.next_attempt_at = "pending", 0, self.clock()

    # ---- inspection --------------------------------------------------------------------
    def dead_letters(self, limit: int = 100) -> list[EventView]:
        """Dead-lettered events, newest first."""
        return self._events("dead_lettered", limit)

    def event(self, event_id: str) -> EventView:
        """One event's state.

        Raises:
            WebhookError: unknown event (404).
        """
        with self.store.session() as sess:
            row = sess.get(WebhookEventRow, event_id)
            if row is None:
                raise WebhookError(404, "not_found", f"no webhook event {event_id!r}")
            return EventView.model_validate(row, from_attributes=True)

    def _events(self, status: str, limit: int) -> list[EventView]:
        with self.store.session() as sess:
            rows = sess.scalars(select(WebhookEventRow).where(WebhookEventRow.status == status)
                                .order_by(WebhookEventRow.received_at.desc()).limit(limit)).all()
            return [EventView.model_validate(r, from_attributes=True) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Queue depth per status and platform plus intake counters since start."""
        with self.store.session() as sess:
            by_status = dict(sess.execute(select(WebhookEventRow.status, func.count())
                                          .group_by(WebhookEventRow.status)).all())
            by_platform = dict(sess.execute(select(WebhookEventRow.platform, func.count())
                                            .group_by(WebhookEventRow.platform)).all())
            registered = sess.scalar(select(func.count()).select_from(WebhookRegistrationRow))
        return {"by_status": {s: int(by_status.get(s, 0)) for s in STATUSES},
                "by_platform": {p: int(n) for p, n in sorted(by_platform.items())},
                "registered_platforms": int(registered or 0), **self.counters}


__all__ = [
    "STATUSES", "EventView", "Receipt", "Registration", "WebhookConfig", "WebhookError",
    "WebhookService", "event_hash", "sign", "verify_signature",
]
