from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from sona.catalog import Actor, CatalogStore
from sona.embeddings import TfidfConfig, TfidfEncoder
from sona.ingest.pipeline import load_resolver
from sona.ingest.processor import EventProcessor
from sona.ingest.resolution import ResolverConfig
from sona.ingest.webhooks import WebhookService, sign
from sona.serving.catalog_api import (
    ENDPOINT_SCOPES,
    AvailabilityRequest,
    CatalogHandler,
    CreateContentRequest,
    PatchContentRequest,
    RegisterWebhookRequest,
)
from sona.serving.errors import ApiError

NOW = datetime(2026, 11, 1, tzinfo=UTC)
ADMIN = Actor(user_id="key:sk_abc", ip="127.0.0.1", user_agent="pytest")


@pytest.fixture
def api(tmp_path):
    encoder = TfidfEncoder(TfidfConfig(n_components=0)).fit(
        ["The Matrix. A hacker learns the truth.", "Fargo. Snow and money.",
         "Heat. Cops and robbers.", "Toy Story. Toys come alive."])
    store = CatalogStore(f"sqlite:///{tmp_path}/catalog.db")
    updates, events = [], []
    resolver = load_resolver(store, ResolverConfig(rules=("eidr", "external_id", "fuzzy_title")))
    hooks = WebhookService(store, EventProcessor(store, resolver, encoder=encoder,
                                                 on_index_update=updates.append,
                                                 clock=lambda: NOW), clock=lambda: NOW)
    handler = CatalogHandler(store, encoder=encoder, on_index_update=updates.append,
                             webhooks=hooks, resolver=resolver,
                             events=lambda name, body: events.append((name, body)),
                             clock=lambda: NOW)
    yield handler, store, updates, events
    store.close()


def create(handler, **kw):
    body = dict(title="The Matrix", content_type="movie", platform="netflix",
                platform_content_id="20557937", overview="A hacker learns the truth.",
                release_year=1999, runtime_minutes=136, genres=["Sci-Fi", "action"],
                rating=8.7, images={"poster_medium": "https://i/m.jpg"}) | kw
    return handler.create_content(CreateContentRequest(**body), actor=ADMIN)


def test_create_embeds_indexes_audits_and_emits(api):
    handler, store, updates, events = api
    out = create(handler)
    assert out.genres == ["action", "sci_fi"] and out.platforms == ["netflix"]
    assert out.platform_ids == {"netflix": "20557937"} and out.rating == 8.7
    # description .15 + poster .15 + year .05 + runtime .05 + genres .10 + rating .15 + fresh .15
    assert out.data_quality_score == pytest.approx(0.80)
    assert out.embedding_model == "tfidf-lsa"
    (update,) = updates
    assert update.upsert_ids == [out.id] and update.payloads[0]["genres"] == ["action", "sci_fi"]
    assert np.linalg.norm(update.vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert events == [("content.created", {"id": out.id, "title": "The Matrix"})]
    (row,) = store.audit_log(action="content_created")
    assert (row.user_id, row.ip, row.resource_id) == ("key:sk_abc", "127.0.0.1", out.id)
    assert store.lookup_mapping("20557937", "platform:netflix") == (out.id, 1.0)
    assert handler.get_content(out.id).title == "The Matrix"


@pytest.mark.parametrize(("kw", "status", "error"), [
    ({"genres": ["Cyberpunk"]}, 400, "invalid_genre"),
    ({"platform": "myspace"}, 400, "invalid_platform"),
])
def test_create_rejects_bad_values(api, kw, status, error):
    with pytest.raises(ApiError) as info:
        create(api[0], **kw)
    assert (info.value.status, info.value.error) == (status, error)


def test_duplicate_listing_conflicts_and_unknown_ids_404(api):
    handler = api[0]
    first = create(handler)
    with pytest.raises(ApiError) as info:
        create(handler, title="Matrix")
    assert info.value.status == 409 and info.value.details["id"] == first.id
    with pytest.raises(ApiError) as info:
        handler.get_content("00000000-0000-0000-0000-000000000000")
    assert info.value.status == 404


def test_patch_reembeds_and_reindexes(api):
    handler, store, updates, events = api
    out = create(handler)
    before = np.asarray(store.get(out.id).embedding)
    patched = handler.update_content(out.id, PatchContentRequest(
        title="Fargo", overview="Snow and money.", genres=["Crime Movies"],
        images={"backdrop": "https://i/b.jpg"}), actor=ADMIN)
    assert patched.title == "Fargo" and patched.genres == ["crime"]
    assert patched.images.poster_medium == "https://i/m.jpg"
    assert patched.images.backdrop == "https://i/b.jpg"
    after = np.asarray(store.get(out.id).embedding)
    assert not np.allclose(before, after) and updates[-1].upsert_ids == [out.id]
    assert events[-1] == ("content.updated", {"id": out.id, "title": "Fargo",
                                              "fields": ["genres", "images", "overview", "title"]})
    assert store.audit_log(action="content_updated")[0].user_id == "key:sk_abc"
    with pytest.raises(ApiError) as info:
        handler.update_content(out.id, PatchContentRequest())
    assert info.value.error == "empty_patch"


def test_availability_put_replaces_platform_offers(api):
    handler = api[0]
    out = create(handler)
    got = handler.put_availability(out.id, AvailabilityRequest(
        regions=["us", "gb"], subscription_required=True, rental_price=3.99,
        available_until=datetime(2027, 1, 1, tzinfo=UTC)))
    assert [(a["availability_type"], a["price_cents"]) for a in got.availability] == [
        ("subscription", None), ("rental", 399)]
    assert got.availability[0]["regions"] == ["US", "GB"]
    with pytest.raises(ApiError) as info:
        handler.put_availability(out.id, AvailabilityRequest(
            available_from=datetime(2027, 1, 2, tzinfo=UTC),
            available_until=datetime(2027, 1, 1, tzinfo=UTC)))
    assert info.value.error == "invalid_window"


def test_delete_removes_from_index_and_store(api):
    handler, store, updates, events = api
    out = create(handler)
    assert handler.delete_content(out.id, actor=ADMIN).deleted
    assert updates[-1].removed_ids == [out.id] and events[-1] == ("content.deleted", {"id": out.id})
    with pytest.raises(ApiError) as info:
        handler.get_content(out.id)
    assert info.value.status == 404
    assert store.audit_log(action="content_deleted")[0].resource_id == out.id


def test_quality_report_endpoint(api):
    handler = api[0]
    good = create(handler)
    poor = create(handler, title="Heat", platform_content_id="1", overview=None, rating=None,
                  images={}, runtime_minutes=None)
    report = handler.quality_report(threshold=0.6, limit=10)
    assert report.total_low_quality == 1
    (row,) = report.low_quality_items
    assert (row.id, row.platform, row.content_type) == (poor.id, "netflix", "movie")
    assert row.quality_score == pytest.approx(0.05 + 0.10 + 0.15)
    assert good.id not in {r.id for r in report.low_quality_items}
    with pytest.raises(ApiError):
        handler.quality_report(threshold=2.0)


def test_webhook_routes_and_crud_share_the_resolver(api):
    handler, store, updates, _ = api
    created = create(handler)
    reg = handler.register_webhook(RegisterWebhookRequest(
        platform="hulu", secret="0123456789abcdef", rate_limit=10), actor=ADMIN)
    assert reg.webhook_url == "/api/v1/webhooks/hulu"
    raw = json.dumps({"event_type": "content_added", "data": {
        "id": "hulu-77", "name": "Matrix, The", "premiere_date": "1999-03-31T00:00:00Z",
        "genre_names": ["Science Fiction"], "tiers": ["ad-supported"]}}).encode()
    with pytest.raises(ApiError) as info:
        handler.receive_webhook("hulu", raw, "sha256=" + "0" * 64)
    assert info.value.status == 401 and info.value.error == "invalid_signature"
    receipt = handler.receive_webhook("hulu", raw, sign("0123456789abcdef", raw))
    assert receipt.status == "queued"
    assert handler.process_webhooks() == {"completed": 1, "failed": 0, "dead_lettered": 0}
    item = store.get(created.id)  # resolved onto the item created through the CRUD API
    assert item.source_platforms == ["netflix", "hulu"] and store.count() == 1
    stats = handler.webhook_stats()
    assert stats["by_status"]["completed"] == 1 and stats["registered_platforms"] == 1
    assert handler.dead_letters() == []
    bare = CatalogHandler(store)
    with pytest.raises(ApiError) as info:
        bare.webhook_stats()
    assert info.value.status == 503


def test_every_public_method_has_a_scope():
    public = {n for n in dir(CatalogHandler) if not n.startswith("_")}
    assert public == set(ENDPOINT_SCOPES)
    assert ENDPOINT_SCOPES["create_content"] == "admin"
    assert ENDPOINT_SCOPES["receive_webhook"] is None
