"""Catalog, quality and webhook routes over the real BentoML server (session fixture):
admin CRUD with API-key scopes, 404/400 JSON bodies, HMAC-signed webhook intake processed
into the catalog, and the low-quality report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from serving_fixtures import RunningServer, call

from sona.ingest.webhooks import sign

CONTENT = "/api/v1/admin/catalog/content"
SECRET = "0123456789abcdef-hulu"


def matrix(**kw: Any) -> dict[str, Any]:
    return {"title": "The Matrix", "content_type": "movie", "platform": "netflix",
            "platform_content_id": "20557937", "overview": "A hacker learns the truth.",
            "release_year": 1999, "runtime_minutes": 136, "genres": ["Sci-Fi", "action"],
            "rating": 8.7, "images": {"poster_medium": "https://i/m.jpg"}} | kw


def test_content_crud_with_admin_key(server: RunningServer) -> None:
    url = server.url + CONTENT
    status, made = call("POST", url, matrix(), server.admin_key)
    assert status == 201, made
    assert made["genres"] == ["action", "sci_fi"] and made["platforms"] == ["netflix"]
    assert made["embedding_model"] == "all-MiniLM-L6-v2"  # re-embedded by the real encoder
    # description .15 + poster .15 + year .05 + runtime .05 + genres .10 + rating .15 + fresh .15
    assert made["data_quality_score"] == pytest.approx(0.80, abs=1e-3)
    one = f"{url}/{made['id']}"
    assert call("GET", one, key=server.admin_key) == (200, made)

    status, patched = call("PATCH", one, {"title": "The Matrix (1999)", "genres": ["Thriller"]},
                           server.admin_key)
    assert status == 200 and patched["title"] == "The Matrix (1999)"
    assert patched["genres"] == ["thriller"] and patched["overview"] == made["overview"]

    status, offers = call("PUT", f"{one}/availability", {
        "regions": ["us", "gb"], "subscription_required": True, "rental_price": 3.99},
        server.admin_key)
    assert status == 200
    assert [(a["availability_type"], a["price_cents"], a["regions"])
            for a in offers["availability"]] == [("subscription", None, ["US", "GB"]),
                                                 ("rental", 399, ["US", "GB"])]

    status, dup = call("POST", url, matrix(title="Matrix"), server.admin_key)
    assert status == 409 and dup["id"] == made["id"]

    assert call("DELETE", one, key=server.admin_key) == (200, {"id": made["id"],
                                                               "deleted": True})
    status, gone = call("GET", one, key=server.admin_key)
    assert status == 404 and gone["error"] == "not_found"


def test_keys_and_scopes(server: RunningServer) -> None:
    url = server.url + CONTENT
    status, body = call("POST", url, matrix(platform_content_id="k-1"))
    assert status == 401 and body["error"] == "unauthorized"
    status, body = call("POST", url, matrix(platform_content_id="k-1"), server.read_key)
    assert status == 403 and body["required_scope"] == "admin"
    status, body = call("GET", f"{url}/anything", key=server.write_key)
    assert status == 403 and body["error"] == "forbidden"
    status, body = call("GET", server.url + "/api/v1/webhooks/stats", key=server.read_key)
    assert status == 403


def test_unknown_id_and_malformed_bodies(server: RunningServer) -> None:
    url = server.url + CONTENT
    missing = f"{url}/00000000-0000-0000-0000-000000000000"
    for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
        status, err = call(method, missing, body, server.admin_key)
        assert status == 404 and err["error"] == "not_found", (method, err)
    status, err = call("PUT", f"{missing}/availability", {"regions": []}, server.admin_key)
    assert status == 404
    for payload, field in ((matrix(release_year="soon"), "release_year"),
                           (matrix(content_type="podcast"), "content_type"),
                           ({k: v for k, v in matrix().items() if k != "title"}, "title"),
                           (matrix(budget=1), "budget"),
                           (matrix(images={"poster": "x"}), "images.poster")):
        status, err = call("POST", url, payload, server.admin_key)
        assert status == 400 and err["error"] == "validation_error", err
        assert err["fields"] == [field] and field in err["message"]
    status, err = call("POST", url, key=server.admin_key, raw=b"{not json")
    assert status == 400 and err["fields"] == ["body"]
    status, err = call("POST", url, matrix(genres=["Cyberpunk"]), server.admin_key)
    assert status == 400 and err["error"] == "invalid_genre"
    status, err = call("GET", server.url + "/api/v1/quality/report?limit=lots",
                       key=server.read_key)
    assert status == 400 and err["fields"] == ["limit"]


def test_signed_webhook_is_accepted_and_processed(server: RunningServer) -> None:
    hooks = server.url + "/api/v1/webhooks"
    status, reg = call("POST", f"{hooks}/register",
                       {"platform": "hulu", "secret": SECRET, "rate_limit": 50},
                       server.admin_key)
    assert status == 200 and reg["webhook_url"] == "/api/v1/webhooks/hulu"
    raw = json.dumps({"event_type": "content_added", "data": {
        "id": "hulu-77", "name": "Heat", "premiere_date": "1995-12-15T00:00:00Z",
        "genre_names": ["Crime"], "tiers": ["ad-supported"]}}).encode()

    status, err = call("POST", f"{hooks}/hulu", raw=raw,
                       headers={"x-hub-signature-256": sign("wrong-secret-123456", raw)})
    assert status == 401 and err["error"] == "invalid_signature"
    status, err = call("POST", f"{hooks}/hulu", raw=raw)  # no signature header at all
    assert status == 401
    status, receipt = call("POST", f"{hooks}/hulu", raw=raw,
                           headers={"X-Hub-Signature-256": sign(SECRET, raw)})
    assert status == 202 and receipt["status"] == "queued"
    status, again = call("POST", f"{hooks}/hulu", raw=raw,
                         headers={"X-Hub-Signature-256": sign(SECRET, raw)})
    assert status == 202 and again == {**receipt, "status": "duplicate"}
    status, err = call("POST", f"{hooks}/peacock", raw=raw,
                       headers={"X-Hub-Signature-256": sign(SECRET, raw)})
    assert status == 404 and err["error"] == "unknown_webhook"

    status, done = call("POST", f"{hooks}/process", key=server.admin_key)
    assert status == 200 and done == {"completed": 1, "failed": 0, "dead_lettered": 0}
    for path in ("stats", "metrics"):
        status, stats = call("GET", f"{hooks}/{path}", key=server.admin_key)
        assert status == 200 and stats["by_status"]["completed"] == 1
        assert stats["received"] == 1 and stats["duplicates"] == 1
        assert stats["rejected_signature"] == 2
    assert call("GET", f"{hooks}/dead-letters", key=server.admin_key) == (200, {"items": []})


def test_quality_report_lists_low_quality_items(server: RunningServer) -> None:
    url = server.url + CONTENT
    status, good = call("POST", url, matrix(platform_content_id="q-good"), server.admin_key)
    assert status == 201
    status, poor = call("POST", url, {"title": "Fargo", "content_type": "movie",
                                      "platform": "netflix", "platform_content_id": "q-poor",
                                      "release_year": 1996, "genres": ["Crime"]},
                        server.admin_key)
    assert status == 201
    status, report = call("GET", server.url + "/api/v1/quality/report?threshold=0.6&limit=50",
                          key=server.read_key)
    assert status == 200 and report["threshold"] == 0.6
    rows = {r["id"]: r for r in report["low_quality_items"]}
    # the catalog also holds the 1,682 MovieLens seeds (title, year, genres: low quality), so
    # the report is cut at limit; the poorest items come first
    assert good["id"] not in rows and report["total_low_quality"] >= len(rows) == 50
    row = rows[poor["id"]]
    assert (row["title"], row["platform"], row["content_type"]) == ("Fargo", "netflix", "movie")
    # year .05 + genres .10 + freshness .15
    assert row["quality_score"] == pytest.approx(0.30, abs=1e-3)
    assert {"description", "rating"} <= set(row["missing_fields"])
    status, err = call("GET", server.url + "/api/v1/quality/report?threshold=2",
                       key=server.read_key)
    assert status == 400 and err["error"] == "validation_error" and "threshold" in err["message"]
    status, _ = call("GET", server.url + "/api/v1/quality/report")
    assert status == 401
