"""Search over a real ``bentoml serve`` (one server for the module): the engine is built from
ML-100K at start-up with the cached MiniLM vectors, the served model is a popularity bundle
fitted on ML-100K (genre content vectors, so personalised search takes the engine's own
user-vector path), and every SPEC §3.8 route is called over HTTP."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_fixtures import FAST_EXPORT, MODEL_NAME, RunningServer, call, write_config

from sona.data.sources import MovieLens
from sona.db import sqlite_url
from sona.lora import SqlAdapterStore
from sona.models.popularity import Popularity, PopularityConfig
from sona.pipeline import ContentConfig
from sona.profile import ProfileStore, weighted_preference
from sona.search.engine import load_engine
from sona.serving.auth import KeyStore
from sona.serving.errors import ApiError
from sona.serving.export_onnx import ExportConfig, export_model
from sona.serving.metrics import serving_metrics
from sona.serving.model_store import ModelStore
from sona.serving.personalization import Personalization
from sona.serving.process import ServerProcess
from sona.serving.search_api import SearchRequest
from sona.serving.search_http import SearchServingConfig, build_search_service
from sona.serving.search_users import SearchUserVectors

pytestmark = [pytest.mark.slow, pytest.mark.realdata]  # export + server + MiniLM: ~30 s

SEARCH = "/api/v1/search"
RANKING = "/api/v1/admin/search/ranking"
# popular ML-100K horror titles: Scream, Alien, Jaws, Psycho, The Shining, Young
# Frankenstein, The Devil's Advocate, The Birds
HORROR = [288, 183, 234, 185, 200, 208, 307, 443]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, ml100k: MovieLens
         ) -> Iterator[RunningServer]:
    work = tmp_path_factory.mktemp("search-server")
    models = work / "models"
    export_model(Popularity(PopularityConfig()).fit(ml100k.interactions),
                 models / MODEL_NAME / "1", name=MODEL_NAME, version=1,
                 catalog=ml100k.catalog, interactions=ml100k.interactions, config=FAST_EXPORT)
    config = write_config(work / "serving.yaml", models,
                          search={"engine_dir": str(work / "engine")})
    keys = KeyStore(sqlite_url(work / "sona.db"))
    admin = keys.create(["admin"], name="search-admin")[1]
    write = keys.create(["write"], name="search-write")[1]
    read = keys.create(["read"], name="search-read")[1]
    with ServerProcess(config) as proc:
        yield RunningServer(proc, proc.url, admin, write, read, config)


def search(live: RunningServer, path: str = SEARCH, **body: Any) -> dict[str, Any]:
    status, out = call("POST", live.url + path, body)
    assert status == 200, out
    return out


def test_engine_built_at_start_up_and_saved(live: RunningServer) -> None:
    engine = live.config.parent / "engine"
    assert (engine / "config.yaml").exists() and (engine / "vectors.npz").exists()
    log = live.server.log_tail(400)
    assert "search engine built from" in log and "1682 documents, minilm" in log


def test_known_items_come_first_with_facets(live: RunningServer) -> None:
    for query, item_id, title in [("star wars", "50", "Star Wars"),
                                  ("toy story", "1", "Toy Story")]:
        out = search(live, query=query, page_size=5)
        first = out["results"][0]
        assert (first["content"]["id"], first["content"]["title"]) == (item_id, title)
        assert out["total_count"] >= 5 and out["page"] == 1 and len(out["results"]) == 5
        assert set(out["facets"]) == {"genres", "platforms", "years", "ratings"}
        assert isinstance(out["search_event_id"], int) and out["search_time_ms"] > 0
    keyword = search(live, f"{SEARCH}/keyword", query="star wars", page_size=3)
    assert keyword["results"][0]["content"]["title"] == "Star Wars"
    assert keyword["results"][0]["vector_similarity"] is None
    vector = search(live, f"{SEARCH}/vector", query="star wars", page_size=3)
    assert vector["total_count"] > 0 and vector["results"][0]["keyword_score"] is None


def test_filters_restrict_results_and_facets(live: RunningServer) -> None:
    out = search(live, query="space adventure", page_size=20, filters={
        "genres": ["sci_fi"], "year_range": {"min": 1990, "max": 1999}})
    assert out["total_count"] > 0
    for result in out["results"]:
        assert "sci_fi" in result["content"]["genres"]
        assert 1990 <= result["content"]["release_year"] <= 1999
    assert [b["value"] for b in out["facets"]["years"]] == ["1990s"]
    genres = {b["value"]: b["count"] for b in out["facets"]["genres"]}
    assert genres["sci_fi"] == out["total_count"]


def test_autocomplete_by_prefix(live: RunningServer) -> None:
    query = urllib.parse.urlencode({"q": "star w", "limit": 5})
    status, out = call("GET", f"{live.url}{SEARCH}/autocomplete?{query}")
    assert status == 200 and out["query"] == "star w"
    assert out["suggestions"][0] == {"text": "Star Wars", "type": "title",
                                     "popularity": out["suggestions"][0]["popularity"],
                                     "metadata": out["suggestions"][0]["metadata"]}
    status, toy = call("GET", f"{live.url}{SEARCH}/autocomplete?q=toy&limit=3")
    assert status == 200 and len(toy["suggestions"]) == 3
    assert toy["suggestions"][0]["text"] == "Toy Story"
    assert all(s["text"].lower().startswith("to") for s in toy["suggestions"])
    status, bad = call("GET", f"{live.url}{SEARCH}/autocomplete?q=toy&limit=lots")
    assert status == 400 and bad["fields"] == ["limit"]


@pytest.mark.parametrize(("body", "error", "named"), [
    ({"query": "   "}, "validation_error", "query"),
    ({"query": "x" * 600}, "validation_error", "query"),
    ({"query": "drama", "filters": {"genres": ["blah"]}}, "invalid_filter", "blah"),
    ({"query": "drama", "filters": {"year_range": {"min": 2000, "max": 1990}}},
     "invalid_filter", "year"),
])
def test_bad_searches_are_400_json(live: RunningServer, body: dict[str, Any], error: str,
                                   named: str) -> None:
    status, out = call("POST", live.url + SEARCH, body)
    assert status == 400 and out["error"] == error and named in out["message"]


def test_missing_query_field_is_named(live: RunningServer) -> None:
    status, out = call("POST", live.url + SEARCH, {"page_size": 5})
    assert status == 400 and out["error"] == "validation_error" and out["fields"] == ["query"]
    status, out = call("POST", live.url + SEARCH, {"query": "x", "page_size": 500})
    assert status == 400 and out["fields"] == ["page_size"]


def test_click_is_logged_and_counts_in_analytics_ctr(live: RunningServer) -> None:
    url = f"{live.url}/api/v1/analytics?period=1h&limit=50"
    assert call("GET", url)[0] == 401
    status, before = call("GET", url, key=live.read_key)
    assert status == 200 and before["period"] == "1h"
    clicked_before = round(before["click_through_rate"] * before["total_searches"])
    out = search(live, query="fargo", page_size=3)
    first = out["results"][0]["content"]
    click_body = {"search_event_id": out["search_event_id"], "content_id": first["id"],
                  "position": 1}
    assert call("POST", f"{live.url}{SEARCH}/click", click_body)[0] == 401  # a write (issue 13)
    status, click = call("POST", f"{live.url}{SEARCH}/click", click_body, key=live.read_key)
    assert status == 200 and click["search_event_id"] == out["search_event_id"]
    status, after = call("GET", url, key=live.read_key)
    assert after["total_searches"] == before["total_searches"] + 1
    assert after["click_through_rate"] == pytest.approx(
        (clicked_before + 1) / after["total_searches"], abs=1e-6)
    assert "fargo" in {q["query"] for q in after["top_queries"]}
    status, missing = call("POST", f"{live.url}{SEARCH}/click", {
        "search_event_id": 10**9, "content_id": "1", "position": 1}, key=live.read_key)
    assert status == 404 and missing["error"] == "not_found"
    assert call("GET", f"{live.url}/api/v1/analytics?period=2y", key=live.read_key)[0] == 400


def horror_count(out: dict[str, Any]) -> int:
    return sum("horror" in r["content"]["genres"] for r in out["results"])


def test_personalised_search_follows_the_users_profile(live: RunningServer) -> None:
    now = int(time.time())
    status, update = call("POST", f"{live.url}/api/v1/profile/update", {
        "user_id": "horror-fan", "viewing_events": [
            {"content_id": i, "timestamp": now - 3600, "completion_rate": 1.0, "rating": 5}
            for i in HORROR]}, key=live.write_key)
    assert status == 200, update
    query = {"query": "classic films", "page_size": 10, "experiment_variant": "aggressive_boost"}
    anonymous = search(live, **query)
    nobody = search(live, **query, user_id="no-profile-user")
    fan = search(live, **query, user_id="horror-fan")
    assert nobody["query_parsed"]["personalization"] == "no profile"
    assert [r["content"]["id"] for r in nobody["results"]] == \
        [r["content"]["id"] for r in anonymous["results"]]
    assert fan["query_parsed"]["personalization_boost"] == 0.6
    assert [r["content"]["id"] for r in fan["results"]] != \
        [r["content"]["id"] for r in anonymous["results"]]
    assert horror_count(fan) >= horror_count(anonymous) + 3
    # an ML-100K training user is personalised from the served model's history alone
    trained = search(live, **query, user_id="1")
    assert trained["query_parsed"]["personalization_boost"] == 0.6


def test_ranking_admin_versions_and_variants(live: RunningServer) -> None:
    status, current = call("GET", live.url + RANKING, key=live.read_key)
    assert status == 200 and current["version"] == 1
    weights = {"vector": 0.0, "keyword": 0.0, "quality": 0.0, "freshness": 1.0}
    assert call("PUT", live.url + RANKING, weights, live.read_key)[0] == 403
    status, put = call("PUT", live.url + RANKING, weights, live.admin_key)
    assert status == 200 and put["version"] == 2
    status, bad = call("PUT", live.url + RANKING, {**weights, "vector": 1.0}, live.admin_key)
    assert status == 400 and bad["error"] == "invalid_weights"
    status, old = call("GET", f"{live.url}{RANKING}/history/1", key=live.read_key)
    assert status == 200 and old["version"] == 1
    assert call("GET", f"{live.url}{RANKING}/history/99", key=live.read_key)[0] == 404
    status, bad = call("GET", f"{live.url}{RANKING}/history/first", key=live.read_key)
    assert status == 400 and bad["fields"] == ["version"]
    newest = search(live, query="sci-fi", page_size=10)
    years = [r["content"]["release_year"] for r in newest["results"]]
    assert years == sorted(years, reverse=True)
    # back to the original weights (a new version) for anything after this test
    status, restored = call("PUT", live.url + RANKING, current["weights"], live.admin_key)
    assert status == 200 and restored["version"] == 3

    variant = f"{RANKING}/variants/popular"
    body = {"weights": {"vector": 0.0, "keyword": 0.0, "quality": 0.0, "freshness": 0.0,
                        "popularity": 1.0}, "traffic_percentage": 10.0}
    assert call("PUT", live.url + variant, body)[0] == 401
    status, made = call("PUT", live.url + variant, body, live.admin_key)
    assert status == 200, made
    status, listed = call("GET", f"{live.url}{RANKING}/variants", key=live.read_key)
    assert status == 200 and [v["name"] for v in listed["items"]] == ["popular"]
    popular = search(live, query="sci-fi", page_size=10, experiment_variant="popular")
    pops = [r["content"]["popularity_score"] for r in popular["results"]]
    assert pops == sorted(pops, reverse=True)
    assert call("DELETE", live.url + variant, key=live.admin_key) == \
        (200, {"deleted": "popular"})
    status, gone = call("GET", live.url + variant, key=live.read_key)
    assert status == 404 and gone["error"] == "not_found"
    status, unknown = call("POST", live.url + SEARCH, {"query": "x",
                                                       "experiment_variant": "popular"})
    # a variant that does not exist (any more) is a 404 naming the field
    assert status == 404 and unknown["error"] == "unknown_variant" \
        and unknown["field"] == "experiment_variant"


def test_search_metrics_are_recorded(live: RunningServer) -> None:
    with urllib.request.urlopen(live.url + "/metrics", timeout=30) as resp:  # noqa: S310
        text = resp.read().decode()
    assert 'sona_request_duration_seconds_count{endpoint="search",status="2xx"}' in text
    assert 'endpoint="search_autocomplete",status="2xx"' in text


def test_saved_engine_is_loaded_and_a_missing_one_is_a_503(live: RunningServer,
                                                          tmp_path: Path) -> None:
    saved = live.config.parent / "engine"
    service = build_search_service(SearchServingConfig(engine_dir=str(saved), warm_up=False),
                                   str(tmp_path / "sona.db"))
    try:
        assert service.source == f"loaded {saved}" and len(service.handler.engine) == 1682
    finally:
        service.close()
    broken = build_search_service(SearchServingConfig(
        engine_dir=str(tmp_path / "none"), dataset=str(tmp_path / "no-data")),
        str(tmp_path / "sona.db"))
    try:
        assert "ml-100k.inter" in (broken.error or "")
        with pytest.raises(ApiError) as info:
            broken.handler.search(SearchRequest(query="star wars"))
        assert info.value.status == 503 and info.value.error == "search_unavailable"
        assert broken.store.analytics_report("1h")["total_searches"] == 0
    finally:
        broken.close()


def test_user_vectors_sona_vector_or_engine_space(live: RunningServer, ml100k: MovieLens,
                                                  tmp_path: Path) -> None:
    """A MiniLM-text bundle shares the engine's space: the SONA vector is used as it is; the
    server's genre bundle does not: SPEC §2.1 runs over the engine's own item vectors."""
    export_model(Popularity(PopularityConfig()).fit(ml100k.interactions),
                 tmp_path / "models" / "text" / "1", name="text", version=1,
                 catalog=ml100k.catalog, interactions=ml100k.interactions,
                 config=ExportConfig(exporter="torchscript", content=ContentConfig(source="text")))
    url = sqlite_url(tmp_path / "sona.db")
    profiles = ProfileStore(url)
    personalization = Personalization(profiles, SqlAdapterStore(url), serving_metrics())
    engine = load_engine(live.config.parent / "engine")
    try:
        text = ModelStore(tmp_path / "models", "text")
        text.load("1")
        users = SearchUserVectors(engine, text, personalization, profiles)
        assert users.shares_space(text.current)
        assert np.array_equal(users("1"), personalization.state(text.current, "1").preference)
        assert users("stranger") is None

        genres = ModelStore(live.config.parent / "models", MODEL_NAME)
        genres.load("1")
        users = SearchUserVectors(engine, genres, personalization, profiles)
        assert not users.shares_space(genres.current)
        watched = ml100k.interactions.frame.query("user_id == 1")["item_id"]
        rows = np.array([engine.item_position(i) for i in watched])
        expected = weighted_preference(rows, np.ones(len(rows)), engine.vectors_)
        assert np.allclose(users("1"), expected, atol=1e-6) and expected.shape == (384,)
    finally:
        personalization.shutdown()
