"""The real BentoML server (session fixture): endpoints over HTTP, bentoml.SyncHTTPClient,
4xx JSON naming the field, 404s, API-key scopes, probes and Prometheus metrics."""

from __future__ import annotations

import json

import bentoml
import numpy as np
import pytest
from serving_fixtures import RunningServer, get, post

NOW = 1_700_000_000
USER = 1000  # power_law_frame's first user id (a warm training user)
ITEM = 5000


def test_sync_client_calls_the_api(server: RunningServer) -> None:
    with bentoml.SyncHTTPClient(server.url) as client:
        out = client.recommendations({"user_id": USER, "limit": 5})
        assert out["user_id"] == str(USER) and len(out["recommendations"]) == 5
        assert out["strategy"] == "personalized" and out["model_version"] == "1"
        similar = client.similar({"content_id": ITEM, "limit": 3})
        assert len(similar["similar_content"]) == 3
        score = client.personalization_score({"user_id": USER, "content_id": ITEM})
        assert 0.0 <= score["score"] <= 1.0
        assert set(score["components"]) == {"collaborative", "content_based", "graph_based",
                                            "context", "lora_boost"}
        with pytest.raises(bentoml.exceptions.BentoMLException) as err:
            client.similar({"content_id": "no-such-item"})
        assert err.value.error_code == 404
        assert json.loads(err.value.message)["error"] == "not_found"
        assert client.ping() == {"ok": True}


def test_plain_http_recommendations(server: RunningServer) -> None:
    status, body = post(f"{server.url}/api/v1/recommendations", {
        "user_id": str(USER), "limit": 8, "exclude_watched": True, "diversity": 0.3,
        "context": {"device_type": "tv", "time_of_day": "evening", "mood": "excited"}})
    assert status == 200
    recs = body["recommendations"]
    assert len(recs) == 8 and len({r["content_id"] for r in recs}) == 8
    assert body["ttl_seconds"] == 3600 and body["generated_at"].endswith("Z")
    for rec in recs:
        assert set(rec) == {"content_id", "confidence_score", "recommendation_type", "based_on",
                            "explanation", "experiment_variant", "where_to_watch"}
        # the test server's catalog holds no offers for these ids: nothing to watch on
        assert rec["where_to_watch"] is None or isinstance(rec["where_to_watch"], dict)
    status, cold = post(f"{server.url}/api/v1/recommendations", {"user_id": "brand-new"})
    assert status == 200 and cold["strategy"] == "cold_start_trending"
    assert len(cold["recommendations"]) == 20
    status, batch = post(f"{server.url}/api/v1/recommendations/batch",
                         {"user_ids": [USER, 1001, "brand-new"], "limit": 4})
    assert status == 200 and [r["user_id"] for r in batch["results"]] == ["1000", "1001",
                                                                         "brand-new"]


@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/api/v1/recommendations", {"user_id": "u", "limit": 0}, "limit"),
    ("/api/v1/recommendations", {"user_id": "u", "limit": "many"}, "limit"),
    ("/api/v1/recommendations", {"user_id": "u", "limt": 5}, "limt"),
    ("/api/v1/recommendations", {"limit": 5}, "user_id"),
    ("/api/v1/recommendations", {"user_id": ""}, "user_id"),
    ("/api/v1/recommendations", {"user_id": True}, "user_id"),
    ("/api/v1/recommendations", {"user_id": "u", "context": {"device_type": "car"}},
     "context.device_type"),
    ("/api/v1/recommendations", {"user_id": "u", "diversity_threshold": 2}, "diversity_threshold"),
    ("/api/v1/recommendations/similar", {"content_id": ITEM, "limit": 1000}, "limit"),
    ("/api/v1/personalization/score", {"user_id": "u"}, "content_id"),
    ("/api/v1/recommendations/batch", {"user_ids": []}, "user_ids"),
])
def test_malformed_payload_is_400_naming_the_field(server: RunningServer, path: str,
                                                    payload: dict, field: str) -> None:
    status, body = post(server.url + path, payload)
    assert status == 400
    assert body["error"] == "validation_error" and field in body["fields"]
    assert body["message"].startswith(field) or f"; {field}" in body["message"]


@pytest.mark.parametrize("raw", [b'{"user_id": "u",', b"[1, 2]", b"not json", b""])
def test_broken_json_is_400(server: RunningServer, raw: bytes) -> None:
    status, body = post(f"{server.url}/api/v1/recommendations", None, raw=raw)
    assert status == 400 and body["error"] == "validation_error" and body["message"]


def test_unknown_items_are_404(server: RunningServer) -> None:
    for path, payload in [("/api/v1/recommendations/similar", {"content_id": "zzz"}),
                          ("/api/v1/personalization/score", {"user_id": USER,
                                                             "content_id": 999_999})]:
        status, body = post(server.url + path, payload)
        assert status == 404 and body["error"] == "not_found" and body["message"]
    status, body = post(f"{server.url}/api/v1/profile/update", {
        "user_id": "x", "viewing_events": [{"content_id": "ghost", "timestamp": NOW,
                                            "completion_rate": 1.0}]},
        headers={"X-API-Key": server.write_key})
    assert status == 404 and body["content_ids"] == ["ghost"]


def test_mutating_endpoints_need_scoped_keys(server: RunningServer) -> None:
    body = {"user_id": "auth-user", "viewing_events": [
        {"content_id": ITEM, "timestamp": "2024-05-01T20:00:00Z", "completion_rate": 0.8}]}
    url = f"{server.url}/api/v1/profile/update"
    assert post(url, body)[0] == 401
    assert post(url, body, headers={"X-API-Key": "sk_" + "0" * 32})[0] == 401
    status, denied = post(url, body, headers={"X-API-Key": server.read_key})
    assert status == 403 and denied["error"] == "forbidden"
    status, ok = post(url, body, headers={"Authorization": f"Bearer {server.write_key}"})
    assert status == 200 and ok["status"] == "updated" and ok["events_processed"] == 1
    status, ok = post(url, body, headers={"X-API-Key": server.admin_key})  # admin implies write
    assert status == 200 and ok["interaction_count"] == 2
    reload_url = f"{server.url}/admin/reload"
    assert post(reload_url, {})[0] == 401
    assert post(reload_url, {}, headers={"X-API-Key": server.write_key})[0] == 403
    status, out = post(reload_url, {"version": "1"}, headers={"X-API-Key": server.admin_key})
    assert status == 200 and out["status"] == "unchanged"


def test_lora_train_endpoint(server: RunningServer) -> None:
    url = f"{server.url}/api/v1/lora/train"
    status, body = post(url, {"user_id": "auth-user"}, headers={"X-API-Key": server.write_key})
    assert status == 400
    assert body["error"] == "Insufficient training data" and body["current_count"] == 2
    assert post(url, {"user_id": "auth-user"})[0] == 401


def test_probes_and_metrics(server: RunningServer) -> None:
    status, health = get(f"{server.url}/health")
    assert status == 200 and health["status"] == "healthy"
    assert health["service"] == "sona-personalization-engine"
    assert health["model"] == {"name": "test-recs", "version": "1"}
    status, ready = get(f"{server.url}/ready")
    assert status == 200 and ready["checks"]["database"]["status"] == "healthy"
    post(f"{server.url}/api/v1/recommendations", {"user_id": USER})
    status, text = get(f"{server.url}/metrics")
    assert status == 200
    assert 'sona_request_duration_seconds_count{endpoint="recommendations",status="2xx"}' in text
    # one timer around Pipeline.rank (sources, blend, MMR run inside it) and the profile load
    for source in ("profile_load", "pipeline"):
        assert f'sona_candidate_source_duration_seconds_count{{source="{source}"}}' in text


def test_garbage_never_yields_500(server: RunningServer) -> None:
    rng = np.random.default_rng(0)
    values = [None, True, -1, 0, 10**12, 1.5, "", "x" * 300, [], {}, [1, "a"], {"a": {"b": 1}},
              "2024-13-45", float("1e308")]
    fields = ["user_id", "content_id", "limit", "context", "viewing_events", "force",
              "diversity", "user_ids", "timestamp", "mood"]
    paths = ["/api/v1/recommendations", "/api/v1/recommendations/similar",
             "/api/v1/personalization/score", "/api/v1/recommendations/batch",
             "/api/v1/profile/update", "/api/v1/lora/train"]
    statuses = []
    for i in range(60):
        payload = {str(rng.choice(fields)): values[rng.integers(len(values))]
                   for _ in range(rng.integers(1, 4))}
        status, body = post(server.url + paths[i % len(paths)], payload,
                            headers={"X-API-Key": server.write_key})
        statuses.append(status)
        assert status < 500, (payload, body)
        assert isinstance(body, dict) and ("error" in body or status == 200)
    assert any(400 <= s < 500 for s in statuses)
