"""Recommendation handlers in-process (no HTTP): cold start, hybrid lists, MMR, context,
scores, profile updates, LoRA training and the central error mapping.

The app serves the hybrid bundle (v3: a fitted pipeline with collaborative, content and
context sources and MMR λ 0.9); the handlers only turn requests into pipeline calls, so
lists are checked against :meth:`Pipeline.rank` of the same state where it matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import HYBRID, Bundles, write_config

from sona.errors import DataError, UnknownIdError
from sona.genres import GENRES
from sona.ranking.context import Context, context_scores
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.batching import MicroBatcher
from sona.serving.errors import ApiError
from sona.serving.personalization import Personalization
from sona.serving.recs_api import RankOverrides, RecsHandler
from sona.serving.schemas import (
    BatchRecommendationRequest,
    LoraTrainRequest,
    ProfileUpdateRequest,
    RecommendationRequest,
    ScoreRequest,
    SimilarRequest,
)
from sona.shared import SharedState

NOW = 1_700_000_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("recs")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml", bundles.models_dir,
                                                        version="3")))
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
    assert resp.strategy == "cold_start_genres"
    for cid in _ids(resp):
        assert "sci_fi" in model.item_genres(int(model.items.numbers([cid])[0]))
    assert [r.confidence_score for r in resp.recommendations] == pytest.approx(
        [0.8, 0.78, 0.76, 0.74])
    assert resp.recommendations[0].based_on == ["signup genres: sci_fi"]


def test_warm_user_gets_a_hybrid_list_without_watched_items(app: SonaApp) -> None:
    model = app.store.current
    user = model.users.id(0)
    watched = set(model.items.ids(model.seen[0].indices))
    resp = app.recs.recommendations(RecommendationRequest(user_id=str(user), limit=15))
    ids = _ids(resp)
    assert resp.strategy == "personalized" and resp.model_version == "3"
    assert len(ids) == 15 and len(set(ids)) == 15 and not watched & set(ids)
    for rec in resp.recommendations:
        assert 0.0 <= rec.confidence_score <= 1.0
        assert set(rec.based_on) <= {"collaborative", "content_based", "context", "lora"}
        assert rec.explanation == "Based on: " + ", ".join(rec.based_on)
    # both sources of the blend back the items (no context given: the context source is off)
    assert all({"collaborative", "content_based"} <= set(r.based_on)
               for r in resp.recommendations)
    assert {r.recommendation_type for r in resp.recommendations} == {"hybrid"}
    kept = app.recs.recommendations(RecommendationRequest(
        user_id=str(user), limit=15, exclude_watched=False, diversity_threshold=0.0))
    assert watched & set(_ids(kept))  # the user's favourites rank high when allowed


def _intra_list_similarity(app: SonaApp, ids: list) -> float:
    model = app.store.current
    vecs = model.item_vectors[model.items.numbers(ids)]
    sims = vecs @ vecs.T
    return float(sims[np.triu_indices(len(ids), 1)].mean())


def test_diversity_threshold_runs_mmr(app: SonaApp) -> None:
    users = [str(u) for u in app.store.current.users.ids(np.arange(10))]
    plain_ils, diverse_ils = [], []
    for user in users:
        plain = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                               diversity_threshold=0.0))
        diverse = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                                 diversity_threshold=0.9))
        scores = [r.confidence_score for r in plain.recommendations]
        assert scores == sorted(scores, reverse=True)  # no diversity: pure relevance order
        plain_ils.append(_intra_list_similarity(app, _ids(plain)))
        diverse_ils.append(_intra_list_similarity(app, _ids(diverse)))
    assert plain_ils != diverse_ils
    # genre vectors (two genres per item) leave little room per user; on average MMR spreads
    assert np.mean(diverse_ils) < np.mean(plain_ils)


@pytest.mark.parametrize("diversity", [None, 0.0, 0.5])
def test_diversity_threshold_is_the_pipelines_mmr_lambda(app: SonaApp,
                                                         diversity: float | None) -> None:
    """The handler passes λ = 1 - diversity_threshold (none given: the pipeline's fitted λ)
    to Pipeline.rank and re-ranks nothing itself (MMR is sona.ranking.rerank.mmr)."""
    model = app.store.current
    user = str(model.users.id(8))
    resp = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                          diversity_threshold=diversity))
    state = app.personalization.state(model, user)
    lam = HYBRID.mmr_lambda if diversity is None else 1.0 - diversity
    ranked = model.pipeline.rank([state], 10, mmr_lambda=lam)
    assert _ids(resp) == list(model.items.ids(ranked.idx[0]))
    assert model.pipeline.mmr_lambda == HYBRID.mmr_lambda
    if diversity == 0.5:  # another λ than the pipeline's, another list
        default = model.pipeline.rank([state], 10)
        assert list(model.items.ids(default.idx[0])) != _ids(resp)


def test_ab_arm_overrides_reach_the_pipeline(app: SonaApp) -> None:
    """An arm's weights and λ replace the pipeline's; a collaborative-only arm lists the
    collaborative source alone."""
    model = app.store.current
    arm = RecsHandler(app.store, app.personalization, app.recs.metrics,
                      overrides=RankOverrides(weights={"collaborative": 1.0}, mmr_lambda=1.0))
    user = str(model.users.id(2))
    resp = arm.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                     diversity_threshold=0.8))
    assert {tuple(r.based_on) for r in resp.recommendations} == {("collaborative",)}
    assert {r.recommendation_type for r in resp.recommendations} == {"collaborative"}
    state = app.personalization.state(model, user)
    ranked = model.pipeline.rank([state], 10, mmr_lambda=1.0,
                                 weights=np.array([1.0, 0.0, 0.0, 0.0]))
    assert _ids(resp) == list(model.items.ids(ranked.idx[0]))
    assert _ids(resp) != _ids(app.recs.recommendations(RecommendationRequest(
        user_id=user, limit=10, diversity_threshold=0.8)))
    with pytest.raises(ApiError) as err:
        RecsHandler(app.store, app.personalization, app.recs.metrics,
                    overrides=RankOverrides(weights={"popularity": 1.0})).recommendations(
            RecommendationRequest(user_id=user))
    assert err.value.status == 400 and "popularity" in err.value.message


def test_context_mood_changes_scores(app: SonaApp) -> None:
    model = app.store.current
    stats = model.pipeline.features_.context
    happy = context_scores(stats, Context(mood="happy"))
    # SPEC §2.6: happy lifts comedy/family/animation items above the popularity floor only
    lifted = np.flatnonzero(happy > 0)
    cols = [GENRES.index(g) for g in ("animation", "comedy", "family")]
    assert len(lifted) and stats.genres[lifted][:, cols].any(axis=1).all()
    user_idx, item = next((u, int(np.setdiff1d(lifted, model.seen[u].indices)[0]))
                          for u in range(len(model.users))
                          if np.setdiff1d(lifted, model.seen[u].indices).size)
    user = str(model.users.id(user_idx))
    score = app.recs.score(ScoreRequest(user_id=user, content_id=str(model.items.id(item)),
                                        context={"mood": "happy"}))
    assert score.components.context is not None and score.components.context > 0
    plain = app.recs.score(ScoreRequest(user_id=user, content_id=str(model.items.id(item))))
    assert plain.components.context is None
    assert score.score > plain.score  # the context source adds to the blend
    body = {"mood": "happy", "time_of_day": "evening"}
    resp = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10,
                                                          context=body))
    evening = context_scores(stats, Context(mood="happy", time_of_day="evening"))
    assert any("context" in r.based_on for r in resp.recommendations)
    for rec in resp.recommendations:  # the context source backs exactly the lifted items
        lifted_item = evening[int(model.items.numbers([rec.content_id])[0])] > 0
        assert ("context" in rec.based_on) == lifted_item, rec
    no_context = app.recs.recommendations(RecommendationRequest(user_id=user, limit=10))
    assert _ids(resp) != _ids(no_context)


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


def test_a_profile_written_by_one_worker_is_read_fresh_by_another(app: SonaApp) -> None:
    # a second worker process: its own state cache over the same database and shared files
    shared = SharedState(app.shared.directory, name=app.shared.name)
    other = Personalization(app.personalization.profiles, app.personalization.adapters,
                            app.metrics, app.config.personalization, shared=shared)
    try:
        model = app.store.current
        items = [int(x) for x in model.items.ids(np.arange(30, 34))]
        cold = other.state(model, "two-workers")  # cached in the other worker
        assert not cold.preference.any()
        app.recs.update_profile(ProfileUpdateRequest(user_id="two-workers",
                                                     viewing_events=_events(items)))
        warm = other.state(model, "two-workers")  # no TTL wait: the shared version moved
        assert warm.preference.any()
        np.testing.assert_array_equal(
            warm.preference, app.personalization.state(model, "two-workers").preference)
        assert other.state(model, "two-workers") is warm  # cached again until the next write
    finally:
        other.shutdown()
        shared.close()


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
    request = ScoreRequest(user_id="lora-user", content_id=str(items[0]))
    score = app.recs.score(request)
    assert score.components.lora_boost != 0.0  # the trained adapter now boosts
    # an A/B arm with the boost off: no LoRA term, the same source components
    off = RecsHandler(app.store, app.personalization, app.recs.metrics,
                      overrides=RankOverrides(lora_boost=0.0)).score(request)
    assert off.components.lora_boost == 0.0
    assert off.components.collaborative == score.components.collaborative


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


def test_micro_batched_requests_equal_one_at_a_time(app: SonaApp) -> None:
    """Concurrent requests ranked together by the service's batcher (one Pipeline.rank call
    per group of shared options) get exactly the lists they get alone: 200 requests with
    mixed contexts, limits, diversity settings, warm and never-seen users."""
    model = app.store.current
    users = [str(u) for u in model.users.ids(np.arange(len(model.users)))]
    contexts = [None, {"mood": "happy"}, {"hour": 21, "weekday": 5, "device_type": "tv"},
                {"time_of_day": "morning", "viewing_with": ["family"]}]
    reqs = [RecommendationRequest.model_validate({
        "user_id": f"stranger-{i}" if i % 17 == 0 else users[i % len(users)],
        "limit": (7, 10)[i % 2], "context": contexts[i % 4],
        "diversity_threshold": None if i % 3 else 0.3}) for i in range(200)]

    async def serve_all() -> list:
        return await asyncio.gather(*(app.recs_batcher.submit(r) for r in reqs))

    batched = asyncio.run(serve_all())
    alone = [app.experiments.recommendations(r) for r in reqs]
    assert {r.strategy for r in alone} >= {"personalized", "cold_start_trending"}
    for got, want in zip(batched, alone, strict=True):
        assert got.user_id == want.user_id and got.strategy == want.strategy
        assert _ids(got) == _ids(want)
        assert [r.confidence_score for r in got.recommendations] == \
            [r.confidence_score for r in want.recommendations]
        assert [r.based_on for r in got.recommendations] == \
            [r.based_on for r in want.recommendations]


def test_micro_batcher_runs_waiting_requests_together() -> None:
    """Requests queued in the same loop iteration share one run (at most max_batch), and a
    failed item raises in its own request only."""
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int | Exception]:
        calls.append(list(items))
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=4)

    async def go() -> list:
        return await asyncio.gather(*(batcher.submit(i) for i in range(6)),
                                    return_exceptions=True)

    results = asyncio.run(go())
    assert calls == [[0, 1, 2, 3], [4, 5]]
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], ValueError)
    assert asyncio.run(batcher.submit(7)) == 70 and calls[-1] == [7]


def _items_per_column(model, ranked, row: int) -> list:  # noqa: ANN001
    """RecsHandler._items as it was before issue 12 (a loop over the columns with numpy
    scalars): the reference the pattern-coded items must equal field for field."""
    from typing import Any, cast

    from sona.pipeline import LABELS
    from sona.serving.schemas import Recommendation

    idx = ranked.idx[row]
    valid = idx >= 0
    ids = model.items.ids(idx[valid])
    strategy = ranked.strategy[row]
    if strategy != "personalized":
        reason = ranked.based_on[row]
        explanation = (f"Popular in your signup genres ({reason.split(': ', 1)[1]})"
                       if strategy == "cold_start_genres" else "Trending now")
        return [Recommendation(content_id=i, confidence_score=float(c),
                               recommendation_type="cold_start", based_on=[reason],
                               explanation=explanation)
                for i, c in zip(ids, ranked.relevance[row][valid], strict=True)]
    contrib = ranked.contributions[row][:, valid]
    lora = ranked.lora[row][valid]
    confidence = np.clip(ranked.relevance[row][valid], 0.0, 1.0)
    recs = []
    for col, item in enumerate(ids):
        based_on = [s for s, c in zip(ranked.sources, contrib[:, col], strict=True) if c > 0]
        if lora[col] > 0:
            based_on.append("lora")
        n_sources = int(np.count_nonzero(contrib[:, col]))
        kind = cast(Any, LABELS[ranked.sources[int(np.argmax(contrib[:, col]))]]) \
            if n_sources == 1 else "hybrid"
        recs.append(Recommendation(
            content_id=item, confidence_score=float(confidence[col]), recommendation_type=kind,
            based_on=based_on, explanation=("Based on: " + ", ".join(based_on)) if based_on
            else "Recommended for you"))
    return recs


def test_response_items_equal_the_per_column_build(app: SonaApp) -> None:
    # issue 12: the items are built from per-row numpy codes; the JSON must not move a byte
    from dataclasses import replace

    from pydantic_core import to_json

    model = app.store.current
    pipeline = model.pipeline
    app.recs.update_profile(ProfileUpdateRequest(user_id="items-genres",
                                                 signup_genres=["Comedy"]))
    users = [str(u) for u in model.users.ids(np.arange(0, 40, 3))] + ["stranger",
                                                                      "items-genres"]
    states = [app.personalization.state(model, u) for u in users]
    few = np.arange(0, model.n_items, max(1, model.n_items // 6))  # short (padded) lists
    rankeds = [pipeline.rank(states, 12), pipeline.rank(states, 12, mmr_lambda=0.5),
               pipeline.rank(states, 12, candidates=few,
                             contexts=Context(hour=21, device="tv", mood="relaxed")),
               pipeline.rank(states, 12, exclude_watched=False)]
    # every pattern of contributions: zeros, negatives, one source alone (also negative),
    # LoRA terms of both signs
    rng = np.random.default_rng(12)
    base = rankeds[0]
    contrib = rng.choice([0.0, -0.0, -0.2, 0.1, 0.3, 0.3], size=base.contributions.shape)
    lora = rng.choice([0.0, -0.5, 0.25], size=base.lora.shape).astype(np.float32)
    rankeds.append(replace(base, contributions=contrib, lora=lora))
    kinds = set()
    for ranked in rankeds:
        assert {"personalized", "cold_start_trending", "cold_start_genres"} <= \
            set(ranked.strategy)
        for row in range(len(states)):
            got = RecsHandler._items(model, ranked, row)
            want = _items_per_column(model, ranked, row)
            assert got == want  # fields, extras and private attributes
            assert [type(r.content_id) for r in got] == [type(r.content_id) for r in want]
            assert [r.model_fields_set for r in got] == [r.model_fields_set for r in want]
            assert to_json([r.model_dump(mode="json") for r in got]) == \
                to_json([r.model_dump(mode="json") for r in want])
            kinds |= {r.recommendation_type for r in got}
    assert {"hybrid", "cold_start", "collaborative", "content_based"} <= kinds
