"""Resilience (issue 13): circuit breakers, fallbacks, database outages, /ready, shutdown.

Faults are injected with monkeypatch (the only use of patching here): the pipeline's
ranking raises or hangs, the search query encoder raises, a database engine refuses
connections. Everything else is the real app: real ONNX Runtime pipeline, real SQLite,
the real ML-100K search engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from serving_fixtures import Bundles, write_config
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from sona.pipeline import Pipeline
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.audit import AuditLog
from sona.serving.readiness import run_checks
from sona.serving.resilience import (
    BreakerConfig,
    BreakerOpenError,
    CircuitBreaker,
    RetryAfter,
    StageTimeoutError,
    call_with_timeout,
    is_database_outage,
)
from sona.serving.schemas import RecommendationRequest
from sona.serving.search_api import SearchRequest


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _boom() -> None:
    raise RuntimeError("onnx session lost")


# --- the breaker --------------------------------------------------------------------------

def test_breaker_opens_after_threshold_then_half_opens_and_closes() -> None:
    clock = Clock()
    opened: list[str] = []
    breaker = CircuitBreaker("dep", BreakerConfig(failure_threshold=3, success_threshold=2,
                                                  reset_timeout_s=10, half_open_max_calls=2),
                             clock=clock, on_open=opened.append)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            breaker.call(_boom)
    assert breaker.state == "closed"
    with pytest.raises(RuntimeError):
        breaker.call(_boom)
    assert breaker.state == "open" and opened == ["dep"]
    calls = []
    with pytest.raises(BreakerOpenError, match="next trial in 10.0 s"):
        breaker.call(lambda: calls.append(1))
    assert calls == []  # refused without calling
    clock.now = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and breaker.allow() and not breaker.allow()  # 2 trial calls
    breaker.record_success()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.call(lambda: 7) == 7


def test_half_open_failure_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", BreakerConfig(failure_threshold=1, reset_timeout_s=5),
                             clock=clock)
    with pytest.raises(RuntimeError):
        breaker.call(_boom)
    clock.now = 5.0
    with pytest.raises(RuntimeError):
        breaker.call(_boom)  # the trial fails
    assert breaker.state == "open" and breaker.retry_in_s() == 5.0
    assert breaker.status()["last_error"] == "onnx session lost"


def test_client_errors_do_not_count() -> None:
    breaker = CircuitBreaker("dep", BreakerConfig(failure_threshold=1))

    def bad_request() -> None:
        raise ValueError("k must be >= 1")

    for _ in range(3):
        with pytest.raises(ValueError):
            breaker.call(bad_request, client_errors=(ValueError,))
    assert breaker.state == "closed"


def test_stage_timeout_counts_as_failure() -> None:
    breaker = CircuitBreaker("dep", BreakerConfig(failure_threshold=1))
    release = threading.Event()
    with pytest.raises(StageTimeoutError, match="dep took longer than 0.05 s"):
        breaker.call(release.wait, timeout_s=0.05)
    release.set()
    assert breaker.state == "open"
    assert call_with_timeout(lambda: 3, None) == 3  # no limit: inline


def test_database_outage_classification() -> None:
    import sqlite3

    down = OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database"))
    bad = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_database_outage(down) and not is_database_outage(bad)
    assert not is_database_outage(ValueError("x"))


def test_retry_after_is_added_to_503_only() -> None:
    async def unavailable(_: Any) -> JSONResponse:
        return JSONResponse({"error": "database_unavailable"}, status_code=503)

    async def ok(_: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = RetryAfter(Starlette(routes=[Route("/down", unavailable), Route("/ok", ok)]),
                     seconds=17)
    client = TestClient(app)
    down = client.get("/down")
    assert down.status_code == 503 and down.headers["retry-after"] == "17"
    assert "retry-after" not in client.get("/ok").headers


# --- the real app ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("resilience")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml",
                                                        bundles.models_dir, version="3")))
    sona_app.warmed_up.wait(60)
    yield sona_app
    sona_app.close()


@pytest.fixture
def fresh_breakers(app: SonaApp) -> Iterator[None]:
    """Closed breakers before and after each test that trips them."""
    def reset() -> None:
        for breaker in (app.model_breaker, app.encoder_breaker):
            breaker.__init__(breaker.name, breaker.config)  # type: ignore[misc]

    reset()
    yield
    reset()


def _popular(app: SonaApp, user: str, k: int) -> list[Any]:
    """The pipeline's own trending list for ``user`` (its cold-start rule, no genres)."""
    model = app.store.current
    pipeline = model.pipeline
    state = app.personalization.state(model, user)
    from sona.pipeline.ranking import cold_start

    picked = cold_start(replace(state, signup_genres=()), pipeline.features_.popularity,
                        pipeline.features_.genres, k, exclude_watched=True)[0]
    return list(model.items.ids(picked))


@pytest.mark.usefixtures("fresh_breakers")
def test_model_failure_serves_popularity_fallback(app: SonaApp,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = app.store.current
    user = str(model.users.id(0))
    warm = app.recs.recommendations(RecommendationRequest(user_id=user, limit=8))
    assert warm.strategy == "personalized"
    monkeypatch.setattr(Pipeline, "rank", lambda *a, **k: _boom())
    status, body = app.dispatch("recommendations", lambda: app.recs.recommendations(
        RecommendationRequest(user_id=user, limit=8)))
    assert status == 200 and body["strategy"] == "fallback"
    ids = [r["content_id"] for r in body["recommendations"]]
    assert ids == _popular(app, user, 8)
    watched = set(model.items.ids(model.seen[0].indices))
    assert not watched & set(ids)  # still excludes what the user watched
    assert {r["recommendation_type"] for r in body["recommendations"]} == {"fallback"}
    share = model.pipeline.popularity_share()
    assert [r["confidence_score"] for r in body["recommendations"]] == pytest.approx(
        share[model.items.numbers(ids)].tolist())
    assert body["ttl_seconds"] == app.config.recs.fallback_ttl_seconds


@pytest.mark.usefixtures("fresh_breakers")
def test_open_model_breaker_skips_the_model(app: SonaApp,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        _boom()

    monkeypatch.setattr(Pipeline, "rank", broken)
    threshold = app.model_breaker.config.failure_threshold
    for _ in range(threshold + 3):
        resp = app.recs.recommendations(RecommendationRequest(user_id="someone", limit=3))
        assert resp.strategy == "fallback" and len(resp.recommendations) == 3
    assert len(calls) == threshold and app.model_breaker.state == "open"
    status, ready = app.ready()
    assert status == 200 and ready["status"] == "degraded"
    assert ready["checks"]["model"]["status"] == "degraded"
    assert ready["checks"]["model"]["breaker"]["state"] == "open"


@pytest.mark.usefixtures("fresh_breakers")
def test_model_timeout_serves_fallback(app: SonaApp, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    original = Pipeline.rank

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(Pipeline, "rank", slow)
    monkeypatch.setattr(app.recs, "timeout_s", 0.05)
    try:
        resp = app.recs.recommendations(RecommendationRequest(user_id="timed", limit=4))
    finally:
        release.set()
    assert resp.strategy == "fallback" and len(resp.recommendations) == 4
    assert "took longer than 0.05 s" in (app.model_breaker.last_error or "")


@pytest.mark.usefixtures("fresh_breakers")
def test_encoder_down_degrades_search_to_keyword(app: SonaApp,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    handler = app.search.handler
    healthy = handler.search(SearchRequest(query="space adventure with robots"))
    assert healthy.degraded == [] and any(r.vector_similarity is not None
                                          for r in healthy.results)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("embedding model unavailable")

    monkeypatch.setattr(handler.engine.encoder, "encode", down)
    query = "a romantic comedy in paris"  # not in the query-vector cache
    resp = handler.search(SearchRequest(query=query))
    keyword = handler.search_keyword(SearchRequest(query=query))
    assert resp.degraded == ["vector"]
    assert [r.content.id for r in resp.results] == [r.content.id for r in keyword.results]
    assert all(r.vector_similarity is None for r in resp.results)
    status, body = app.dispatch("search_vector",
                                lambda: handler.search_vector(SearchRequest(query=query)))
    assert status == 503 and body["error"] == "encoder_unavailable"
    assert "embedding model unavailable" in body["message"]
    status, ready = app.ready()
    assert status == 200 and ready["checks"]["search_encoder"]["status"] in {
        "healthy", "degraded"} and ready["checks"]["search_encoder"]["required"] is False


def test_database_down_is_503(app: SonaApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connect", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(app.personalization.profiles.engine, "connect", refuse)
    status, body = app.dispatch("recommendations", lambda: app.recs.recommendations(
        RecommendationRequest(user_id="never-seen-before", limit=3)))
    assert status == 503 and body["error"] == "database_unavailable"
    assert body["retry_after_s"] == app.config.resilience.retry_after_s
    assert "disk I/O" not in body["message"]  # no driver internals leak
    status, ready = app.ready()
    assert status == 503 and ready["status"] == "unhealthy"
    assert ready["checks"]["database"]["status"] == "unhealthy"
    assert "disk I/O error" in ready["checks"]["database"]["error"]
    assert ready["checks"]["catalog_database"]["status"] == "healthy"


def test_ready_names_every_component(app: SonaApp) -> None:
    status, ready = app.ready()
    assert status == 200 and ready["status"] in {"healthy", "degraded"}
    assert set(ready["checks"]) == {
        "model", "warm_up", "database", "catalog_database", "experiments_database",
        "sync_database", "search_analytics_database", "events_database", "playback_database",
        "search_engine", "search_encoder"}
    for name, check in ready["checks"].items():
        assert check["status"] == "healthy" or name == "search_encoder", (name, check)
    assert ready["checks"]["search_engine"]["documents"] > 1000


def test_ready_is_503_when_search_failed_to_build(app: SonaApp,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 13: /ready said healthy while every search route answered 503
    monkeypatch.setattr(app.search, "error", "no dataset at datasets/ml-100k")
    status, ready = app.ready()
    assert status == 503
    assert ready["checks"]["search_engine"] == {
        "status": "unhealthy", "error": "no dataset at datasets/ml-100k", "required": True}


def test_a_hung_check_times_out() -> None:
    release = threading.Event()
    try:
        status, body = run_checks({"hung": lambda: {"status": "healthy"} if release.wait(30)
                                   else {}, "fine": lambda: {"status": "healthy"}},
                                  required={"hung"}, timeout_s=0.1)
    finally:
        release.set()
    assert status == 503
    assert body["checks"]["hung"]["error"] == "timed out after 0.1 s"
    assert body["checks"]["fine"]["status"] == "healthy"


# --- graceful shutdown ------------------------------------------------------------------

def test_close_drains_in_flight_requests(tmp_path: Any, bundles: Bundles) -> None:
    sona_app = SonaApp(load_serving_config(write_config(tmp_path / "serving.yaml",
                                                        bundles.models_dir)))
    started, release = threading.Event(), threading.Event()
    results: list[tuple[int, dict[str, Any]]] = []

    def slow_write() -> dict[str, Any]:
        started.set()
        release.wait(30)
        sona_app.audit.record("admin_action", "test", "drain")  # a write during shutdown
        return {"written": True}

    request = threading.Thread(target=lambda: results.append(
        sona_app.dispatch("slow", slow_write)))
    request.start()
    assert started.wait(30)
    closer = threading.Thread(target=sona_app.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # close waits for the request in flight
    assert sona_app.dispatch("late", lambda: {"x": 1}) == (503, {
        "error": "shutting_down", "message": "the server is shutting down; retry shortly"})
    release.set()
    request.join(30)
    closer.join(30)
    assert not closer.is_alive() and results == [(200, {"written": True})]
    log = AuditLog(f"sqlite:///{tmp_path / 'sona.db'}")
    assert [r.resource_id for r in log.query(resource_type="test")] == ["drain"]


def test_popularity_fallback_matches_trending_for_cold_users(app: SonaApp) -> None:
    """The fallback reuses the cold-start rule: a cold user's trending list is the same."""
    cold = app.recs.recommendations(RecommendationRequest(user_id="brand-new", limit=6))
    assert cold.strategy == "cold_start_trending"
    assert [r.content_id for r in cold.recommendations] == _popular(app, "brand-new", 6)
    assert np.all(np.diff([r.confidence_score for r in cold.recommendations]) <= 0)


def test_model_swaps_reach_every_worker_and_a_failed_follow_is_degraded(
        app: SonaApp, bundles: Bundles) -> None:
    from serving_fixtures import MODEL_NAME

    from sona.serving.model_store import MODEL_TOPIC, ModelStore
    from sona.serving.schemas import ReloadRequest
    from sona.shared import SharedState

    def wait_for(predicate: Any) -> None:
        deadline = time.monotonic() + 60.0
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)

    # another worker: its own store and shared-state instance (the app's tailer runs)
    shared = SharedState(app.shared.directory, name=app.shared.name)
    other = ModelStore(bundles.models_dir, MODEL_NAME, shared=shared)
    admin = {"X-API-Key": app.keys.create(["admin"], name="swap-admin")[1]}
    swaps = len(app.audit.query(action="model_swapped"))
    try:
        other.load("3")
        # POST /admin/reload answers for this worker; the other follows
        out = app.reload(ReloadRequest(version="2", wait=True), admin)
        assert out == {"status": "loaded", "version": "2", "current": "2"}
        shared.poll()
        wait_for(lambda: other.ready and other.current.version == "2")
        # a swap made in the other worker: this one follows, the swap is audited once
        other.reload("1", wait=True)
        wait_for(lambda: app.store.current.version == "1")
        assert len(app.audit.query(action="model_swapped")) == swaps + 1  # 3 -> 2 only
        # a version this worker cannot load: it keeps serving, /ready says degraded
        shared.publish(MODEL_TOPIC, {"name": MODEL_NAME, "version": "404",
                                     "generation": shared.bump(MODEL_TOPIC, MODEL_NAME)})
        wait_for(lambda: app.store.behind == "404")
        status, body = app.ready()
        model = body["checks"]["model"]
        assert status == 200 and model["status"] == "degraded"
        assert model["version"] == "1" and model["behind"] == "404"
    finally:
        app.reload(ReloadRequest(version="3", wait=True), admin)
        other.stop()
        shared.close()
    assert app.store.behind is None and app.ready()[1]["checks"]["model"]["behind"] is None
