"""Recommendation handlers in-process (no HTTP): cold start, hybrid lists, MMR, context,
scores, profile updates, LoRA training and the central error mapping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import Bundles, write_config

from sona.errors import DataError, UnknownIdError
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.errors import ApiError
from sona.serving.recs_api import mmr
from sona.serving.schemas import (
    BatchRecommendationRequest,
    LoraTrainRequest,
    ProfileUpdateRequest,
    RecommendationRequest,
    ScoreRequest,
    SimilarRequest,
)

NOW = 1_700_000_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("recs")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml", bundles.models_dir)))
    yield sona_app
    sona_app.close()


def _events(items: list[int], completion: float = 0.9) -> list[dict]:
    return [{"content_id": i, "timestamp": NOW + n, "completion_rate": completion, "rating": 4}
            for n, i in enumerate(items)]


def _ids(resp) -> list:
    return [r.content_id for r in resp.recommendations]


def test_unknown_user_gets_trending(app: SonaApp) -> None:
    resp = app.recs.recommendations(RecommendationRequest(user_id="stranger", limit=5))
    model = app.store.current
    expected = np.lexsort((np.arange(model.n_items), -model.popularity))[:5]
    assert _ids(resp) == list(model.items.ids(expected))
    assert resp.strategy == "cold_start_trending" and resp.ttl_seconds == 1800
    assert [r.confidence_score for r in resp.recommendations] == pytest.approx(
        [0.6, 0.59, 0.58, 0.57, 0.56])
    assert {r.recommendation_type for r in resp.recommendations} == {"cold_start"}


def test_signup_genres_drive_cold_start(app: SonaApp) -> None:
    app.recs.update_profile(ProfileUpdateRequest(user_id="newbie", signup_genres=["Sci-Fi"]))
    resp = app.recs.recommendations(RecommendationRequest(user_id="newbie", limit=4))
    model = app.store.current
    col = model.genre_column("sci_fi")
    assert resp.strategy == "cold_start_genres"
    for cid in _ids(resp):
        assert model.genres[model.items.number(cid), col]
    assert [r.confidence_score for r in resp.recommendations] == pytest.approx(
        [0.8, 0.78, 0.76, 0.74])
    assert resp.recommendations[0].based_on == ["signup genres: sci_fi"]


def test_warm_user_gets_a_hybrid_list_without_watched_items(app: SonaApp) -> None:
    model = app.store.current
    user = model.users.id(0)
    watched = set(model.items.ids(model.seen[0].indices))
    resp = app.recs.recommendations(RecommendationRequest(user_id=str(user), limit=15))
    ids = _ids(resp)
    assert resp.strategy == "personalized" and resp.model_version == "1"
    assert len(ids) == 15 and len(set(ids)) == 15 and not watched & set(ids)
    for rec in resp.recommendations:
        assert 0.0 <= rec.confidence_score <= 1.0
        assert set(rec.based_on) <= {"collaborative", "content_based", "context", "lora"}
        assert rec.explanation == "Based on: " + ", ".join(rec.based_on)
    kept = app.recs.recommendations(RecommendationRequest(
        user_id=str(user), limit=15, exclude_watched=False, diversity_threshold=0.0))
    assert watched & set(_ids(kept))  # the user's favourites rank high when allowed


def _intra_list_similarity(app: SonaApp, ids: list) -> float:
    model = app.store.current
    vecs = model.item_vectors[model.items.numbers(ids)]
    sims = vecs @ vecs.T
    return float(sims[np.triu_indices(len(ids), 1)].mean())


def test_diversity_threshold_runs_mmr(app: SonaApp) -> None:
    user = str(app.store.current.users.id(3))
    plain = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                           diversity_threshold=0.0))
    diverse = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                             diversity_threshold=0.9))
    scores = [r.confidence_score for r in plain.recommendations]
    assert scores == sorted(scores, reverse=True)  # no diversity: pure relevance order
    assert _ids(plain) != _ids(diverse)
    assert _intra_list_similarity(app, _ids(diverse)) < _intra_list_similarity(app, _ids(plain))


def test_mmr_known_answer() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    cands = np.array([0, 1, 2])
    assert list(mmr(cands, np.array([1.0, 0.9, 0.5]), vectors, 2, lam=1.0)) == [0, 1]
    # the duplicate of item 0 loses to the orthogonal item once diversity counts
    assert list(mmr(cands, np.array([1.0, 0.9, 0.5]), vectors, 2, lam=0.5)) == [0, 2]


def test_context_mood_changes_scores(app: SonaApp) -> None:
    model = app.store.current
    user = str(model.users.id(5))
    cols = [model.genre_column(g) for g in ("comedy", "family")]
    happy_items = np.flatnonzero(model.genres[:, cols].any(axis=1))
    other = np.setdiff1d(np.arange(model.n_items), happy_items)
    score = app.recs.score(ScoreRequest(user_id=user, content_id=str(model.items.id(
        int(happy_items[0]))), context={"mood": "happy"}))
    assert score.components.context is not None and score.components.context > 0
    plain = app.recs.score(ScoreRequest(user_id=user, content_id=str(model.items.id(
        int(other[0])))))
    assert plain.components.context is None
    resp = app.recs.recommendations(RecommendationRequest(
        user_id=user, limit=10, context={"mood": "happy", "time_of_day": "evening"}))
    assert all("context" in r.based_on for r in resp.recommendations)


def test_score_components(app: SonaApp) -> None:
    model = app.store.current
    warm = app.recs.score(ScoreRequest(user_id=str(model.users.id(0)),
                                       content_id=str(model.items.id(7))))
    assert 0.0 <= warm.score <= 1.0
    c = warm.components
    assert c.graph_based is None and c.lora_boost == 0.0
    assert 0.0 <= c.collaborative <= 1.0 and 0.0 <= c.content_based <= 1.0  # type: ignore[operator]
    cold = app.recs.score(ScoreRequest(user_id="nobody-at-all", content_id=str(model.items.id(0))))
    assert cold.components.collaborative is None and cold.components.content_based is None
    assert cold.score == pytest.approx(model.popularity[0] / model.popularity.max())
    with pytest.raises(ApiError) as err:
        app.recs.score(ScoreRequest(user_id="x", content_id="no-such-item"))
    assert err.value.status == 404


def test_similar_items(app: SonaApp) -> None:
    model = app.store.current
    item = model.items.id(4)
    resp = app.recs.similar(SimilarRequest(content_id=str(item), limit=5))
    found = [s.content_id for s in resp.similar_content]
    assert len(found) == 5 and item not in found
    scores = [s.score for s in resp.similar_content]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0 + 1e-6
    with pytest.raises(ApiError):
        app.recs.similar(SimilarRequest(content_id="nope"))


def test_profile_update_changes_preference_at_once(app: SonaApp) -> None:
    model = app.store.current
    items = [int(x) for x in model.items.ids(np.arange(20, 26))]
    before = app.personalization.state(model, "fresh")
    assert not before.preference.any() and before.is_cold(5)
    out = app.recs.update_profile(ProfileUpdateRequest(user_id="fresh",
                                                       viewing_events=_events(items[:3])))
    assert out.events_processed == 3 and out.interaction_count == 3
    assert out.preference_vector_dim == model.dim and out.lora_training == "not_needed"
    mid = app.personalization.state(model, "fresh")
    assert mid.preference.any() and np.linalg.norm(mid.preference) == pytest.approx(1.0, abs=1e-5)
    app.recs.update_profile(ProfileUpdateRequest(user_id="fresh",
                                                 viewing_events=_events(items[3:])))
    after = app.personalization.state(model, "fresh")
    assert not np.allclose(after.preference, mid.preference)
    resp = app.recs.recommendations(RecommendationRequest(user_id="fresh", limit=10))
    assert resp.strategy == "personalized"  # 6 watches: no longer cold
    assert "collaborative" in resp.recommendations[0].based_on  # folded in from events
    assert not set(items) & set(_ids(resp))
    stored = app.personalization.profiles.get("fresh")
    assert stored is not None and stored.interaction_count == 6


def test_profile_update_with_unknown_item_is_404_and_stores_nothing(app: SonaApp) -> None:
    with pytest.raises(ApiError) as err:
        app.recs.update_profile(ProfileUpdateRequest(user_id="u404", viewing_events=[
            {"content_id": "ghost", "timestamp": NOW, "completion_rate": 1.0}]))
    assert err.value.status == 404 and err.value.details["content_ids"] == ["ghost"]
    assert app.personalization.profiles.event_count("u404") == 0


def test_lora_training_needs_ten_events(app: SonaApp) -> None:
    model = app.store.current
    items = [int(x) for x in model.items.ids(np.arange(40, 52))]
    app.recs.update_profile(ProfileUpdateRequest(user_id="lora-user",
                                                 viewing_events=_events(items[:4])))
    with pytest.raises(ApiError) as err:
        app.recs.train_lora(LoraTrainRequest(user_id="lora-user"))
    assert err.value.status == 400 and err.value.error == "Insufficient training data"
    assert err.value.details == {"current_count": 4}
    out = app.recs.update_profile(ProfileUpdateRequest(user_id="lora-user",
                                                       viewing_events=_events(items[4:])))
    assert out.interaction_count == 12 and out.lora_training in {"scheduled", "already_running"}
    deadline = time.monotonic() + 60
    while app.personalization.adapters.latest("lora-user") is None:
        assert time.monotonic() < deadline, "background LoRA training never finished"
        time.sleep(0.05)
    with pytest.raises(ApiError) as err:
        app.recs.train_lora(LoraTrainRequest(user_id="lora-user"))
    assert err.value.status == 429  # just trained in the background
    done = app.recs.train_lora(LoraTrainRequest(user_id="lora-user", force=True))
    assert done.status == "training_completed" and done.adapter_version == 2
    assert done.events_used == 12 and done.training_iterations == 5 * 12
    score = app.recs.score(ScoreRequest(user_id="lora-user", content_id=str(items[0])))
    assert score.components.lora_boost != 0.0  # the trained adapter now boosts


def test_batch_equals_single_requests(app: SonaApp) -> None:
    model = app.store.current
    users = [str(u) for u in model.users.ids(np.arange(10, 16))] + ["stranger"]
    batch = app.recs.batch(BatchRecommendationRequest(user_ids=users, limit=7))
    for user, resp in zip(users, batch.results, strict=True):
        single = app.recs.recommendations(RecommendationRequest(user_id=user, limit=7))
        assert _ids(resp) == _ids(single) and resp.user_id == user


@pytest.mark.parametrize(("exc", "status", "error"), [
    (ApiError(409, "conflict", "x"), 409, "conflict"),
    (UnknownIdError("item", [5]), 404, "not_found"),
    (DataError("bad rows"), 400, "bad_request"),
    (ValueError("bad value"), 400, "bad_request"),
    (RuntimeError("boom"), 500, "internal_error"),
])
def test_dispatch_maps_errors(app: SonaApp, exc: Exception, status: int, error: str) -> None:
    def handler() -> dict:
        raise exc

    got_status, body = app.dispatch("test", handler)
    assert (got_status, body["error"]) == (status, error)
    assert "message" in body and "boom" not in body["message"]


def test_dispatch_checks_scopes(app: SonaApp) -> None:
    _, key = app.keys.create(["read"])
    status, body = app.dispatch("t", lambda: {"ok": 1}, headers={}, scope="write")
    assert status == 401
    status, body = app.dispatch("t", lambda: {"ok": 1}, headers={"X-API-Key": key},
                                scope="write")
    assert status == 403 and body["required_scope"] == "write"
    assert app.dispatch("t", lambda: {"ok": 1}, headers={"Authorization": f"Bearer {key}"},
                        scope="read") == (200, {"ok": 1})


def test_config_file_is_strict(tmp_path: Path) -> None:
    from sona.errors import ConfigError
    from sona.io import write_yaml

    write_yaml(tmp_path / "bad.yaml", {"model_nmae": "x"})
    with pytest.raises(ConfigError, match="model_nmae"):
        load_serving_config(tmp_path / "bad.yaml")
