"""Wiring of the serving catalog (in-process): default location, index updates reaching the
callback, and a restarted handler whose resolver and webhook processor know the catalog."""

from __future__ import annotations

import json
from pathlib import Path

from sona.ingest.pipeline import IndexUpdate
from sona.ingest.webhooks import sign
from sona.serving.catalog_api import CreateContentRequest, RegisterWebhookRequest
from sona.serving.catalog_http import CatalogConfig, build_catalog_handler, catalog_url

NO_ENCODER = CatalogConfig(encoder="none")


def test_default_catalog_sits_next_to_the_serving_database(tmp_path: Path) -> None:
    database = str(tmp_path / "state" / "sona.db")
    assert catalog_url(CatalogConfig(), database) == f"sqlite:///{tmp_path}/state/catalog.db"
    assert catalog_url(CatalogConfig(url="sqlite:///x.db"), database) == "sqlite:///x.db"


def test_built_handler_indexes_writes_and_resumes_the_catalog(tmp_path: Path) -> None:
    database = str(tmp_path / "sona.db")
    updates: list[IndexUpdate] = []
    handler = build_catalog_handler(NO_ENCODER, database, on_index_update=updates.append)
    try:
        heat = handler.create_content(CreateContentRequest(
            title="Heat", content_type="movie", platform="netflix", platform_content_id="n-1",
            release_year=1995, genres=["Crime"]))
        assert (tmp_path / "catalog.db").exists() and heat.embedding_model is None
        (update,) = updates
        assert update.upsert_ids == [heat.id] and update.vectors is None  # encoder "none"
        assert update.payloads == [{"id": heat.id, "title": "Heat", "genres": ["crime"]}]
        other = handler.create_content(CreateContentRequest(
            title="Fargo", content_type="movie", platform="netflix", platform_content_id="n-2"))
        handler.delete_content(other.id)
        assert updates[-1].removed_ids == [other.id] and handler.store.count() == 1
    finally:
        handler.store.close()

    # a restarted server: the webhook event for the same film on hulu resolves (fuzzy title
    # + year) onto the stored item, re-indexes it through the callback, and adds no item
    updates.clear()
    again = build_catalog_handler(NO_ENCODER, database, on_index_update=updates.append)
    try:
        secret = "0123456789abcdef"
        again.register_webhook(RegisterWebhookRequest(platform="hulu", secret=secret))
        raw = json.dumps({"event_type": "content_added", "data": {
            "id": "hulu-9", "name": "Heat", "premiere_date": "1995-12-15T00:00:00Z",
            "genre_names": ["Crime"], "tiers": ["ad-supported"]}}).encode()
        assert again.receive_webhook("hulu", raw, sign(secret, raw)).status == "queued"
        assert again.process_webhooks() == {"completed": 1, "failed": 0, "dead_lettered": 0}
        assert again.store.count() == 1
        assert again.store.get(heat.id).source_platforms == ["netflix", "hulu"]
        assert [u.upsert_ids for u in updates] == [[heat.id]]
    finally:
        again.store.close()
