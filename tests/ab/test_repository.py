"""The A/B store on SQLite and PostgreSQL: CRUD, lifecycle, sticky assignment, exposures,
idempotent events, concurrency and the Alembic schema."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sona.ab.assignment import choose_variant
from sona.ab.migrations import VERSION_TABLE, current_revision, head_revision, migrate
from sona.ab.records import (
    DuplicateNameError,
    ExposedItem,
    OutcomeEvent,
    StateError,
    VariantSpec,
)
from sona.ab.repository import ExperimentRepository, database_url
from sona.ab.tables import metadata
from sona.errors import ConfigError, UnknownIdError

ARMS = [VariantSpec("control", 0.5), VariantSpec("treatment", 0.5, {"mmr_lambda": 0.4})]


def _running(repo: ExperimentRepository, name: str = "exp", **kwargs: object):
    exp = repo.create_experiment(name, ARMS, **kwargs)  # type: ignore[arg-type]
    return repo.set_status(exp.id, "running")


def test_create_get_list(repo: ExperimentRepository) -> None:
    exp = repo.create_experiment("homepage", ARMS, description="MMR test",
                                 traffic_allocation=0.5, primary_metric="watch_time")
    assert exp.status == "draft" and exp.salt == exp.id and exp.started_at is None
    assert [v.name for v in exp.variants] == ["control", "treatment"]
    assert exp.variants[1].config.mmr_lambda == 0.4
    assert repo.get("homepage") == repo.get(exp.id) == exp
    assert [e.name for e in repo.list_experiments()] == ["homepage"]
    assert repo.list_experiments("running") == []
    body = exp.to_dict()
    assert body["variants"][1]["config"] == {"mmr_lambda": 0.4}
    assert body["traffic_allocation"] == 0.5 and body["primary_metric"] == "watch_time"
    with pytest.raises(UnknownIdError, match="nope"):
        repo.get("nope")


def test_invalid_experiments_are_rejected(repo: ExperimentRepository) -> None:
    repo.create_experiment("taken", ARMS)
    with pytest.raises(DuplicateNameError, match="taken"):
        repo.create_experiment("taken", ARMS)
    with pytest.raises(ValueError, match="sum to 1.0"):
        repo.create_experiment("w", [VariantSpec("a", 0.5), VariantSpec("b", 0.6)])
    with pytest.raises(ValueError, match="at least 2"):
        repo.create_experiment("one", [VariantSpec("a", 1.0)])
    with pytest.raises(ValueError, match="unique"):
        repo.create_experiment("dup", [VariantSpec("a", 0.5), VariantSpec("a", 0.5)])
    with pytest.raises(ConfigError, match="mmr_lamda"):
        repo.create_experiment("typo", [VariantSpec("a", 0.5, {"mmr_lamda": 0.3}),
                                        VariantSpec("b", 0.5)])
    with pytest.raises(ValueError, match="explore_epsilon"):
        repo.create_experiment("eps", [VariantSpec("a", 0.5, {"explore_epsilon": 1.0}),
                                       VariantSpec("b", 0.5)])
    with pytest.raises(ValueError, match="traffic_allocation"):
        repo.create_experiment("t", ARMS, traffic_allocation=0.0)
    assert [e.name for e in repo.list_experiments()] == ["taken"]


def test_lifecycle(repo: ExperimentRepository) -> None:
    exp = repo.create_experiment("life", ARMS)
    with pytest.raises(StateError, match="allowed: \\['running'\\]"):
        repo.set_status(exp.id, "paused")
    with pytest.raises(ValueError, match="valid statuses"):
        repo.set_status(exp.id, "archived")
    running = repo.set_status(exp.id, "running")
    assert running.status == "running" and running.started_at is not None
    assert repo.running_experiments() == [running]
    paused = repo.set_status(exp.id, "paused")
    again = repo.set_status(exp.id, "running")
    assert paused.status == "paused" and again.started_at == running.started_at
    with pytest.raises(StateError, match="only a draft"):
        repo.update_experiment(exp.id, traffic_allocation=0.3)
    assert repo.update_experiment(exp.id, description="now").description == "now"
    with pytest.raises(StateError, match="only drafts"):
        repo.delete_experiment(exp.id)
    done = repo.set_status(exp.id, "completed")
    assert done.completed_at is not None
    with pytest.raises(StateError, match="allowed: none"):
        repo.set_status(exp.id, "running")


def test_draft_update_and_delete(repo: ExperimentRepository) -> None:
    exp = repo.create_experiment("draft", ARMS)
    changed = repo.update_experiment(exp.id, variants=[
        VariantSpec("a", 0.2), VariantSpec("b", 0.3), VariantSpec("c", 0.5, {"lora_boost": 0.0})],
        traffic_allocation=0.4)
    assert [v.name for v in changed.variants] == ["a", "b", "c"]
    assert changed.traffic_allocation == 0.4 and changed.variants[2].config.lora_boost == 0.0
    repo.delete_experiment(exp.id)
    assert repo.list_experiments() == []


def test_assignment_is_sticky_and_persistent(repo: ExperimentRepository) -> None:
    exp = _running(repo)
    users = [f"user-{i}" for i in range(40)]
    first = {u: repo.assign(exp, u) for u in users}
    assert all(v is not None for v in first.values())
    for u, v in first.items():
        assert v is not None
        assert v.name == exp.variants[choose_variant(exp.id, u, exp.weights, 1.0)].name
        assert repo.assign(exp, u) == v
    # a restart: a new repository on the same database returns the stored variants
    reopened = ExperimentRepository(repo.url)
    assert {u: reopened.assignment(exp, u) for u in users} == first
    reopened.close()
    # another process sees the same assignments
    code = ("import json,sys; from sona.ab.repository import ExperimentRepository; "
            "r = ExperimentRepository(sys.argv[1]); e = r.get('exp'); "
            "print(json.dumps({u: r.assign(e, u).name for u in json.loads(sys.argv[2])}))")
    out = subprocess.run([sys.executable, "-c", code, repo.url, json.dumps(users)],
                         check=True, capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout) == {u: v.name for u, v in first.items() if v is not None}


def test_traffic_allocation_and_paused(repo: ExperimentRepository) -> None:
    exp = _running(repo, traffic_allocation=0.3)
    results = {f"u{i}": repo.assign(exp, f"u{i}") for i in range(300)}
    inside = [u for u, v in results.items() if v is not None]
    assert 0.15 < len(inside) / 300 < 0.45
    outside = next(u for u, v in results.items() if v is None)
    assert repo.assignment(exp, outside) is None  # nobody outside the slice is stored
    paused = repo.set_status(exp.id, "paused")
    assert repo.assign(paused, inside[0]) == results[inside[0]]
    assert repo.assign(paused, "brand-new-user") is None


def test_exposures_and_event_attribution(repo: ExperimentRepository) -> None:
    exp = _running(repo)
    user = "alice"
    variant = repo.assign(exp, user)
    assert variant is not None
    exposure = repo.record_exposure(exp, variant, user, [
        ExposedItem("i1", 0, 0.9, 1.0), ExposedItem("i2", 1, 0.5, 0.25)], model_version="3")
    assert repo.exposure(exposure)["model_version"] == "3"  # type: ignore[index]
    with pytest.raises(ValueError, match="propensities"):
        repo.record_exposure(exp, variant, user, [ExposedItem("i1", 0, 0.9, 0.0)])
    results = repo.record_events([
        OutcomeEvent("e1", user, "click", item_id="i2", position=1, exposure_id=exposure),
        OutcomeEvent("e2", user, "watch_time", 31.5),  # by the user's assignment
        OutcomeEvent("e3", "bob", "click"),  # in no experiment: kept, unattributed
        OutcomeEvent("e4", "bob", "click", exposure_id=exposure),
        OutcomeEvent("e5", "bob", "click", experiment_id=exp.id),
        OutcomeEvent("e6", user, "click", exposure_id="missing"),
        OutcomeEvent("e7", user, "Bad Metric"),
        OutcomeEvent("e1", user, "click"),
    ])
    assert [(r.event_id, r.status) for r in results] == [
        ("e1", "recorded"), ("e2", "recorded"), ("e3", "recorded"), ("e4", "rejected"),
        ("e5", "rejected"), ("e6", "rejected"), ("e7", "rejected"), ("e1", "duplicate")]
    assert results[0].variant == variant.name and results[1].experiment_id == exp.id
    assert results[2].experiment_id is None
    assert "another user" in (results[3].reason or "")
    assert results[4].reason == "user not in experiment"
    # a retried batch records nothing twice
    again = repo.record_events([OutcomeEvent("e1", user, "click", exposure_id=exposure),
                                OutcomeEvent("e2", user, "watch_time", 31.5)])
    assert [r.status for r in again] == ["duplicate", "duplicate"]
    assert repo.count_outcomes() == 3 and repo.count_outcomes(exp.id) == 2
    shown = repo.exposure_item_frame(exp)
    assert shown[["item_id", "position", "propensity", "reward"]].values.tolist() == [
        ["i1", 0, 1.0, 0.0], ["i2", 1, 0.25, 1.0]]
    summary = repo.metrics_summary(exp)[variant.id]
    assert summary["exposures"] == 1 and summary["unique_users"] == 1
    assert summary["conversions"]["watch_time"] == {"count": 1, "sum": 31.5, "mean": 31.5,
                                                    "conversion_rate": 1.0}
    repo.set_status(exp.id, "completed")
    late = repo.record_events([OutcomeEvent("e9", user, "click", experiment_id=exp.id)])
    assert late[0].status == "rejected" and late[0].reason == "experiment is completed"


def test_pre_period_events_feed_the_user_frame(repo: ExperimentRepository) -> None:
    exp = repo.create_experiment("cuped", ARMS)
    repo.record_events([OutcomeEvent("p1", "carol", "click", 2.0, recorded_at=1000.0),
                        OutcomeEvent("p2", "carol", "click", 1.0, recorded_at=1001.0)])
    exp = repo.set_status(exp.id, "running")
    variant = repo.assign(exp, "carol")
    assert variant is not None
    repo.record_exposure(exp, variant, "carol", [ExposedItem("x", 0, 1.0, 1.0)])
    repo.record_events([OutcomeEvent("d1", "carol", "click")])
    row = repo.user_frame(exp, "click").iloc[0]
    assert (row.user_id, row.exposures, row.events, row.value) == ("carol", 1, 1, 1.0)
    assert (row.pre_events, row.pre_value) == (2, 3.0)


def test_concurrent_events_give_exactly_n_rows(repo: ExperimentRepository) -> None:
    exp = _running(repo)
    users = [f"c{i}" for i in range(20)]
    for u in users:
        repo.assign(exp, u)
    n = 400
    events = [OutcomeEvent(f"ev-{i}", users[i % 20], "click") for i in range(n)]
    batches = [events[i:i + 10] for i in range(0, n, 10)]
    with ThreadPoolExecutor(8) as pool:
        first = [r for batch in pool.map(repo.record_events, batches) for r in batch]
        # every batch again, concurrently, plus overlapping halves: still n rows
        halves = [events[i:i + 5] for i in range(0, n, 5)]
        again = [r for batch in pool.map(repo.record_events, batches + halves) for r in batch]
    assert sum(r.status == "recorded" for r in first) == n
    assert all(r.status == "duplicate" for r in again)
    assert repo.count_outcomes(exp.id) == n


def test_migrations_match_the_tables(db_url: str) -> None:
    repo = ExperimentRepository(db_url)
    assert current_revision(repo.engine) == head_revision()
    assert migrate(repo.engine) == head_revision()  # idempotent
    with repo.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
    repo.close()


def test_database_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SONA_DB_URL", raising=False)
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/experiments.db"
    monkeypatch.setenv("SONA_DB_URL", "postgresql+psycopg://u@127.0.0.1:1/db")
    assert database_url(None, tmp_path) == "postgresql+psycopg://u@127.0.0.1:1/db"
    assert database_url("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_sqlite_runs_wal_with_full_sync(sqlite_repo: ExperimentRepository) -> None:
    with sqlite_repo.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
