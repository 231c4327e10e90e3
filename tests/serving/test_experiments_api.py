"""Experiment endpoints in-process (handler + SonaApp.dispatch): CRUD, lifecycle, serving
through the variant's config with exposures, exploration propensities, events."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from serving_fixtures import Bundles, write_config

from sona.serving.app import SonaApp, load_serving_config
from sona.serving.experiments_api import (
    ConversionRequest,
    CreateExperimentRequest,
    EventsRequest,
    StatusRequest,
    UpdateExperimentRequest,
)
from sona.serving.schemas import RecommendationRequest

USER = "1000"  # a warm training user of the synthetic serving data


@pytest.fixture
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[SonaApp]:
    monkeypatch.delenv("SONA_DB_URL", raising=False)
    work = tmp_path_factory.mktemp("experiments")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml",
                                                        bundles.models_dir)))
    yield sona_app
    sona_app.close()


def _create(app: SonaApp, name: str = "exp", **overrides: object) -> str:
    body = {"name": name, "variants": [
        {"name": "control", "weight": 0.5, "config": {}},
        {"name": "treatment", "weight": 0.5, "config": {"model_version": "2"}}]}
    body.update(overrides)
    status, out = app.dispatch("create", lambda: app.experiments.create(
        CreateExperimentRequest.model_validate(body)))
    assert status == 200, out
    return str(out["experiment_id"])


def _start(app: SonaApp, exp_id: str) -> None:
    assert app.experiments.set_status(exp_id, StatusRequest(status="running"))["status"] == \
        "running"


def test_crud_and_lifecycle_errors(app: SonaApp) -> None:
    exp_id = _create(app)
    assert app.experiments.get("exp")["experiment_id"] == exp_id
    listed = app.experiments.list_experiments()
    assert listed["count"] == 1 and len(listed["experiments"][0]["variants"]) == 2
    status, body = app.dispatch("create", lambda: app.experiments.create(
        CreateExperimentRequest.model_validate({"name": "exp", "variants": [
            {"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]})))
    assert status == 409 and body["error"] == "conflict"
    status, body = app.dispatch("create", lambda: app.experiments.create(
        CreateExperimentRequest.model_validate({"name": "bad", "variants": [
            {"name": "a", "weight": 0.5, "config": {"mmr_lamda": 1}},
            {"name": "b", "weight": 0.5}]})))
    assert status == 400 and "mmr_lamda" in body["message"]
    status, body = app.dispatch("status", lambda: app.experiments.set_status(
        exp_id, StatusRequest(status="archived")))
    assert status == 400 and body["error"] == "Invalid status"
    assert body["valid_statuses"] == ["draft", "running", "paused", "completed"]
    status, body = app.dispatch("status", lambda: app.experiments.set_status(
        exp_id, StatusRequest(status="completed")))
    assert status == 409 and "allowed: ['running']" in body["message"]
    status, body = app.dispatch("get", lambda: app.experiments.get("missing"))
    assert status == 404
    updated = app.experiments.update(exp_id, UpdateExperimentRequest(traffic_allocation=0.5))
    assert updated["traffic_allocation"] == 0.5
    _start(app, exp_id)
    status, body = app.dispatch("update", lambda: app.experiments.update(
        exp_id, UpdateExperimentRequest(traffic_allocation=1.0)))
    assert status == 409
    status, body = app.dispatch("delete", lambda: app.experiments.delete(exp_id))
    assert status == 409
    trail = [(r.action, r.details.get("to")) for r in app.audit.query(resource_type="experiment")]
    assert trail == [("experiment_status_changed", "running"), ("experiment_updated", None),
                     ("experiment_created", None)]


def test_each_variant_serves_its_config_and_logs_exposures(app: SonaApp) -> None:
    exp_id = _create(app)
    _start(app, exp_id)
    seen: dict[str, set[str]] = {"control": set(), "treatment": set()}
    for user in [str(1000 + i) for i in range(30)]:
        resp = app.experiments.recommendations(RecommendationRequest(user_id=user, limit=5))
        tags = {r.experiment_variant for r in resp.recommendations}
        assert len(tags) == 1
        variant = tags.pop().split(":")[1]  # type: ignore[union-attr]
        seen[variant].add(resp.model_version)
        assert resp.experiment_id == exp_id and resp.exposure_id is not None
        again = app.experiments.recommendations(RecommendationRequest(user_id=user, limit=5))
        assert again.recommendations[0].experiment_variant == f"exp:{variant}"  # sticky
    # the treatment's config pins model version 2 (ALS), the control serves the default v1
    assert seen == {"control": {"1"}, "treatment": {"2"}}
    exp = app.experiments.repo.get(exp_id)
    shown = app.experiments.repo.exposure_item_frame(exp)
    assert len(shown) == 60 * 5 and set(shown["propensity"]) == {1.0}
    assert shown.groupby("exposure_id")["position"].apply(list).map(
        lambda p: p == [0, 1, 2, 3, 4]).all()
    metrics = app.experiments.metrics(exp_id)["variant_metrics"]
    assert sum(m["exposures"] for m in metrics.values()) == 60
    assert sum(m["unique_users"] for m in metrics.values()) == 30


def test_config_changes_the_ranking(app: SonaApp) -> None:
    body = {"name": "weights", "variants": [
        {"name": "control", "weight": 0.5},
        {"name": "content", "weight": 0.5,
         "config": {"weights": {"content_based": 1.0}, "mmr_lambda": 1.0}}]}
    exp_id = _create(app, **body)
    _start(app, exp_id)
    exp = app.experiments.repo.get(exp_id)
    req = RecommendationRequest(user_id=USER, limit=10)
    control = app.experiments.handler_for(exp.variant("control")).recommendations(req)
    content = app.experiments.handler_for(exp.variant("content")).recommendations(req)
    assert [r.content_id for r in control.recommendations] != \
        [r.content_id for r in content.recommendations]
    assert {r.recommendation_type for r in content.recommendations} == {"content_based"}


def test_traffic_allocation_leaves_users_out(app: SonaApp) -> None:
    exp_id = _create(app, traffic_allocation=0.2)
    _start(app, exp_id)
    tagged = 0
    for i in range(40):
        resp = app.experiments.recommendations(RecommendationRequest(user_id=f"x{i}", limit=3))
        tagged += resp.recommendations[0].experiment_variant is not None
    exp = app.experiments.repo.get(exp_id)
    assert 0 < tagged < 20
    assert len(app.experiments.repo.user_frame(exp, "click")) == tagged


def test_exploration_logs_propensities(app: SonaApp) -> None:
    exp_id = _create(app, name="explore", variants=[
        {"name": "control", "weight": 0.5, "config": {"explore_epsilon": 0.3,
                                                      "explore_pool": 20}},
        {"name": "treatment", "weight": 0.5, "config": {"explore_epsilon": 0.3,
                                                        "explore_pool": 20}}])
    _start(app, exp_id)
    for _ in range(10):
        resp = app.experiments.recommendations(RecommendationRequest(user_id=USER, limit=6))
        ids = [r.content_id for r in resp.recommendations]
        assert len(ids) == 6 == len(set(ids))
    shown = app.experiments.repo.exposure_item_frame(app.experiments.repo.get(exp_id))
    props = shown["propensity"].to_numpy()
    # list-level exploration: the pool's p-th item in slot p has 0.7 + 0.3/20, others 0.3/20
    greedy = np.isclose(props, 0.7 + 0.3 / 20)
    assert np.all(greedy | np.isclose(props, 0.3 / 20))
    assert greedy.mean() > 0.5


def test_events_and_conversions(app: SonaApp) -> None:
    exp_id = _create(app)
    _start(app, exp_id)
    resp = app.experiments.recommendations(RecommendationRequest(user_id=USER, limit=3))
    first = resp.recommendations[0]
    batch = EventsRequest.model_validate({"events": [
        {"event_id": "a", "user_id": USER, "metric": "click", "item_id": first.content_id,
         "position": 0, "exposure_id": resp.exposure_id},
        {"event_id": "b", "user_id": USER, "metric": "watch_time", "value": 42.0},
        {"event_id": "a", "user_id": USER, "metric": "click"},
        {"event_id": "c", "user_id": "stranger", "metric": "click", "experiment_id": exp_id}]})
    out = app.experiments.events(batch)
    assert (out["received"], out["recorded"], out["duplicate"], out["rejected"]) == (4, 2, 1, 1)
    assert out["results"][3]["reason"] == "user not in experiment"
    assert app.experiments.events(batch)["recorded"] == 0  # idempotent retry
    ok = app.experiments.conversion(ConversionRequest(user_id=USER, metric_name="play"))
    assert ok["status"] == "recorded" and ok["experiment_id"] == exp_id
    status, body = app.dispatch("conversion", lambda: app.experiments.conversion(
        ConversionRequest(user_id="nobody", metric_name="play", experiment_id=exp_id)))
    assert status == 400 and body["error"] == "User not in experiment"
    report = app.experiments.report(exp_id)
    assert report["metric"] == "click" and report["srm"]["flagged"] is False


def test_a_change_in_one_worker_is_applied_by_the_other_at_once(app: SonaApp) -> None:
    from sona.ab.repository import ExperimentRepository
    from sona.serving.experiments_api import ExperimentsHandler
    from sona.shared import SharedState

    # a second worker process: its own repository connection, caches and shared-state
    # instance; a TTL of an hour shows that nothing waits for it
    shared = SharedState(app.shared.directory, name=app.shared.name)
    other = ExperimentsHandler(ExperimentRepository(app.experiments.repo.url,
                                                    migrate_schema=False),
                               app.recs, cache_ttl_s=3600.0, shared=shared)
    try:
        req = RecommendationRequest(user_id=USER, limit=5)
        assert other.running() == []
        assert other.recommendations(req).recommendations[0].experiment_variant is None
        exp_id = _create(app, variants=[{"name": "control", "weight": 0.5},
                                        {"name": "treatment", "weight": 0.5,
                                         "config": {"mmr_lambda": 1.0}}])
        _start(app, exp_id)
        assert [e.id for e in other.running()] == [exp_id]
        # the same arm for every user in both workers, whichever assigns first
        for i in range(12):
            user = f"w{i}"
            first, second = (other, app.experiments) if i % 2 else (app.experiments, other)
            tag = first.recommendations(RecommendationRequest(user_id=user, limit=3))
            again = second.recommendations(RecommendationRequest(user_id=user, limit=3))
            assert tag.experiment_id == again.experiment_id == exp_id
            assert tag.recommendations[0].experiment_variant == \
                again.recommendations[0].experiment_variant
        app.experiments.set_status(exp_id, StatusRequest(status="paused"))
        assert other.running() == []
        assert other.recommendations(req).recommendations[0].experiment_variant is None
        other.set_status(exp_id, StatusRequest(status="running"))  # and the other way
        assert [e.id for e in app.experiments.running()] == [exp_id]
        app.experiments.set_status(exp_id, StatusRequest(status="completed"))
        assert other.running() == []
    finally:
        other.close()
        shared.close()
