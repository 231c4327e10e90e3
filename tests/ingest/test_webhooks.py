from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sona.catalog import CatalogStore
from sona.ingest.pipeline import load_resolver
from sona.ingest.processor import EventProcessor
from sona.ingest.resolution import ResolverConfig
from sona.ingest.webhooks import (
    WebhookConfig,
    WebhookError,
    WebhookService,
    event_hash,
    sign,
    verify_signature,
)

SECRET = "s3cret-s3cret-s3cret"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, tzinfo=UTC)
        self.mono = 0.0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def netflix(pid: int = 80100172, title: str = "Fargo", countries=("US",), **extra) -> dict:
    return {"netflixId": pid, "title": title, "synopsis": "Snow and money.", "releaseYear": 1996,
            "runtime": 5880, "genres": ["Crime Movies", "Dramas"], "ids": {"imdb": "tt0116282"},
            "countries": list(countries), "maxQuality": "HD", **extra}


def hulu(title: str = "Fargo") -> dict:
    return {"id": "f4a1c0de-hulu", "name": title, "premiere_date": "1996-03-08T00:00:00Z",
            "genre_names": ["Crime"], "external_ids": {"imdb_id": "116282"}, "tiers": ["ad-free"],
            "artwork": {"program.tile": {"path": "https://i/h.jpg"}}}


def body(event_type: str, **payload) -> bytes:
    return json.dumps({"event_type": event_type, **payload}).encode()


@pytest.fixture
def env(tmp_path, char_encoder):
    clock = Clock()
    store = CatalogStore(f"sqlite:///{tmp_path}/catalog.db")
    updates: list = []
    resolver = load_resolver(store, ResolverConfig(index_kind="flat"), encoder=char_encoder)
    processor = EventProcessor(store, resolver, encoder=char_encoder,
                               on_index_update=updates.append, clock=clock)
    service = WebhookService(store, processor, config=WebhookConfig(max_attempts=3),
                             clock=clock, monotonic=lambda: clock.mono)
    service.register("netflix", SECRET, rate_limit=100)
    service.register("hulu", SECRET, rate_limit=100)
    yield service, store, updates, clock
    store.close()


def post(service, platform, raw: bytes, secret=SECRET):
    return service.receive(platform, raw, sign(secret, raw))


def test_signature_is_hmac_sha256_of_the_exact_body():
    raw = b'{"event_type":"content_added"}'
    header = sign(SECRET, raw)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, raw, header)
    assert not verify_signature(SECRET, raw + b" ", header)
    assert not verify_signature("another-secret-123", raw, header)
    assert not verify_signature(SECRET, raw, header[7:])  # missing "sha256=" prefix
    assert not verify_signature(SECRET, raw, None)


def test_intake_rejections_carry_http_status(env):
    service, store, _, _ = env
    raw = body("content_added", data=netflix())
    for call, status in [
        (lambda: post(service, "peacock", raw), 404),
        (lambda: post(service, "netflix", raw, secret="wrong-secret-123456"), 401),
        (lambda: post(service, "netflix", b"{not json"), 400),
        (lambda: post(service, "netflix", body("content_exploded")), 400),
    ]:
        with pytest.raises(WebhookError) as info:
            call()
        assert info.value.status == status
    service.register("netflix", SECRET, enabled=False)
    with pytest.raises(WebhookError) as info:
        post(service, "netflix", raw)
    assert info.value.status == 403
    with pytest.raises(WebhookError, match="16 characters"):
        service.register("hulu", "short")
    assert service.stats()["rejected_signature"] == 1
    assert store.audit_log(resource_type="webhook")[0].details["enabled"] is False


def test_idempotent_within_24_hours(env):
    service, _, _, clock = env
    raw = body("content_added", data=netflix())
    first = post(service, "netflix", raw)
    again = post(service, "netflix", json.dumps(json.loads(raw), indent=2).encode())
    assert (first.status, again.status) == ("queued", "duplicate")
    assert again.event_id == first.event_id
    assert first.event_hash == event_hash("netflix", json.loads(raw))
    clock.advance(24 * 3600 + 1)
    assert post(service, "netflix", raw).status == "queued"
    assert service.stats()["duplicates"] == 1


def test_rate_limit_per_platform(env):
    service, _, _, clock = env
    service.register("netflix", SECRET, rate_limit=2)
    post(service, "netflix", body("content_added", data=netflix(1)))
    post(service, "netflix", body("content_added", data=netflix(2)))
    with pytest.raises(WebhookError) as info:
        post(service, "netflix", body("content_added", data=netflix(3)))
    assert info.value.status == 429
    clock.advance(30)  # 2/min refills one token in 30 s
    assert post(service, "netflix", body("content_added", data=netflix(3))).status == "queued"


def test_events_flow_through_normalise_resolve_embed_and_index(env):
    service, store, updates, clock = env
    post(service, "netflix", body("content_added", data=netflix()))
    assert service.process_due() == {"completed": 1, "failed": 0, "dead_lettered": 0}
    (item,) = store.list_items()
    assert item.title == "Fargo" and item.source_platforms == ["netflix"]
    assert item.embedding_model == "char3-hash" and len(item.embedding) == 512
    assert updates[-1].upsert_ids == [item.canonical_id] and updates[-1].vectors.shape == (1, 512)
    assert updates[-1].payloads == [{"id": item.canonical_id, "title": "Fargo",
                                     "genres": ["crime", "drama"]}]
    clock.advance(60)
    post(service, "netflix", body("availability_changed", data=netflix(countries=("US", "GB"))))
    post(service, "hulu", body("content_added", data=hulu("FARGO")))
    assert service.process_due()["completed"] == 2
    (item,) = store.list_items()  # the Hulu record resolved to the same entity (IMDb id)
    assert item.source_platforms == ["netflix", "hulu"]
    assert {a.platform: a.regions for a in item.availability}["netflix"] == ["US", "GB"]
    assert item.images.poster_medium == "https://i/h.jpg" and item.title == "Fargo"
    assert item.external_ids.platform_ids == {"netflix": "80100172", "hulu": "f4a1c0de-hulu"}
    post(service, "netflix", body("content_removed", platform_content_id="80100172"))
    service.process_due()
    assert store.get(item.canonical_id).source_platforms == ["hulu"]
    post(service, "hulu", body("content_removed", platform_content_id="f4a1c0de-hulu"))
    service.process_due()
    assert store.count() == 0
    assert updates[-1].removed_ids == [item.canonical_id] and updates[-1].upsert_ids == []
    assert [r.action for r in store.audit_log(resource_type="content")][0] == "content_deleted"


def test_dead_letter_after_max_attempts_then_requeue(env):
    service, store, _, clock = env

    def broken_index(update):
        raise RuntimeError("vector store unavailable")

    service.processor.on_index_update = broken_index
    receipt = post(service, "netflix", body("content_added", data=netflix()))
    assert service.process_due() == {"completed": 0, "failed": 1, "dead_lettered": 0}
    assert service.process_due()["failed"] == 0  # backoff: not due yet
    clock.advance(2.0)  # retry_base_s * 2**0
    assert service.process_due()["failed"] == 1
    clock.advance(4.0)  # retry_base_s * 2**1
    assert service.process_due() == {"completed": 0, "failed": 0, "dead_lettered": 1}
    (dead,) = service.dead_letters()
    assert dead.id == receipt.event_id and dead.attempts == 3
    assert dead.last_error == "RuntimeError: vector store unavailable"
    assert service.stats()["by_status"]["dead_lettered"] == 1
    service.processor.on_index_update = None
    service.requeue(dead.id)
    assert service.process_due()["completed"] == 1
    assert service.event(dead.id).status == "completed" and store.count() == 1


def test_malformed_record_is_dead_lettered_at_once(env):
    service, _, _, _ = env
    raw = netflix()
    raw.pop("title")
    post(service, "netflix", body("content_added", data=raw))
    assert service.process_due() == {"completed": 0, "failed": 0, "dead_lettered": 1}
    (dead,) = service.dead_letters()
    assert dead.attempts == 1 and "netflix record" in dead.last_error
