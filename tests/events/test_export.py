"""``sona events export`` (issue 11 item 4): the event log becomes an interactions file
that passes the dataset validation, merges with ML-100K one row per pair, and trains in a
tiny experiment next to ML-100K."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from sona.data.interactions import load_interactions
from sona.data.sources import MovieLens
from sona.errors import DataError
from sona.events import EventLog, LogEvent
from sona.events.export import event_interactions, export_events
from sona.experiments.runner import run_experiment
from sona.experiments.spec import load_experiment
from sona.profile import ViewingEvent, engagement_weight

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
# the new viewer's titles: Star Wars, Return of the Jedi, Empire, ... (ML-100K ids)
TITLES = ["50", "181", "172", "174", "176", "210", "1", "98", "127", "56", "64", "100"]


def _events() -> list[LogEvent]:
    out = [LogEvent(f"e{i}", "5001", "playback_complete", T0 + i, title,
                    {"completion_rate": 1.0}) for i, title in enumerate(TITLES)]
    out += [
        LogEvent("r1", "5001", "content_rating", T0 + 50, "50", {"rating": 5}),
        LogEvent("p1", "5001", "playback_progress", T0 + 60, "313",
                 {"position_seconds": 10, "duration_seconds": 100}),  # 0.1: below 0.3
        LogEvent("s1", "5001", "search_query", T0 + 70, None, {"query": "space"}),
        LogEvent("v1", "7", "content_view", T0 + 80, "50", {}),  # a pair ML-100K has
    ]
    return out


def test_event_rows_follow_the_engagement_weights() -> None:
    from sona.events.log import StoredEvent

    stored = [StoredEvent(i, e, T0) for i, e in enumerate(_events())]
    frame, n_viewing = event_interactions(stored)
    assert n_viewing == 15 and len(frame) == 13  # 12 titles + user 7's view; 313 dropped
    star_wars = frame[(frame.user_id == "5001") & (frame.item_id == "50")].iloc[0]
    rated = engagement_weight(ViewingEvent("50", T0, 1.0, rating=5))
    assert star_wars.weight == pytest.approx(rated) and star_wars.rating == 5.0
    assert star_wars.timestamp == T0 + 50
    jedi = frame[(frame.user_id == "5001") & (frame.item_id == "181")].iloc[0]
    assert jedi.weight == pytest.approx(engagement_weight(ViewingEvent("181", T0, 1.0)))
    assert np.isnan(jedi.rating)


def test_rows_do_not_depend_on_how_users_interleaved_in_the_log() -> None:
    # two viewers watching at once interleave differently on every run; a split draws its
    # numbers in row order, so the rows must come out in one order (user, time, item)
    from sona.events.log import StoredEvent

    a = [LogEvent(f"a{i}", "10", "playback_complete", T0 + 2 * i, t, {"completion_rate": 1.0})
         for i, t in enumerate(TITLES[:4])]
    b = [LogEvent(f"b{i}", "9", "playback_complete", T0 + 2 * i + 1, t,
                  {"completion_rate": 1.0}) for i, t in enumerate(TITLES[4:8])]
    interleaved = [e for pair in zip(a, b, strict=True) for e in pair]
    frames = [event_interactions([StoredEvent(i, e, T0) for i, e in enumerate(events)])[0]
              for events in (interleaved, b + a, a + b)]
    for frame in frames[1:]:
        assert frame.equals(frames[0])
    assert list(frames[0].user_id) == ["9"] * 4 + ["10"] * 4  # 9 before 10: numerically
    assert list(frames[0].item_id) == TITLES[4:8] + TITLES[:4]  # each user's in time order


def test_export_merges_with_ml100k_and_an_experiment_trains_on_it(
        tmp_path: Path, ml100k: MovieLens) -> None:
    log = EventLog(f"sqlite:///{tmp_path / 'events.db'}")
    log.append(_events())
    out = tmp_path / "ml100k-plus-events.tsv"
    result = export_events(log, out, base=ml100k.interactions, progress=False)
    log.close()
    # 100,000 ML-100K rows + the 12 new viewer's pairs; user 7's view of 50 is one row
    assert result.n_rows == 100_012 and result.n_users == 944 and result.n_items == 1682
    data = load_interactions(out)
    assert data.frame.user_id.dtype == np.int64  # all-integer ids stay integers
    assert len(data.frame[(data.frame.user_id == 7) & (data.frame.item_id == 50)]) == 1
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ml100k-plus-events", "dataset": {"name": "file", "path": str(out)},
        "metrics": ["ndcg", "hit_rate"], "published": False,
        "models": [{"name": "ease", "model": "ease", "params": {"l2": 500.0}}],
        "tracking": {"enabled": False}, "results_dir": str(tmp_path / "results")}))
    run = run_experiment(load_experiment(config), progress=False)
    assert run.data_stats["n_interactions"] == 100_012
    assert run.data_stats["n_users"] == 944 and run.data_stats["n_eval_users"] == 944
    ndcg = run.rows[0].metrics["ndcg"]
    assert ndcg is not None and 0.3 < ndcg < 0.6  # EASE's ML-100K range: the data is sound
    assert run.dataset_md5 == {out.name: result.md5}


def test_an_empty_log_is_a_clear_error(tmp_path: Path) -> None:
    log = EventLog(f"sqlite:///{tmp_path / 'events.db'}")
    log.append([LogEvent("s", "1", "search_query", T0)])
    with pytest.raises(DataError, match="no qualifying viewing events"):
        export_events(log, tmp_path / "out.parquet", progress=False)
    log.close()


def test_cli_exports_the_log(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    log = EventLog(f"sqlite:///{db}")
    log.append(_events())
    log.close()
    out = tmp_path / "events.parquet"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([str(REPO / ".venv/bin/sona"), "events", "export", "--db", str(db),
                           "--out", str(out), "--events-only", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "13 interactions" in proc.stdout and f"path: {out}" in proc.stdout
    assert len(load_interactions(out)) == 13
    missing = subprocess.run([str(REPO / ".venv/bin/sona"), "events", "export", "--db",
                              str(tmp_path / "nope.db")], capture_output=True, text=True,
                             env=env, timeout=120, check=False)
    assert missing.returncode == 2 and "event log database not found" in missing.stderr
