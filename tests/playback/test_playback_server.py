"""Playback and the event log over a real ``bentoml serve`` (issue 11 items 3, 4): a viewer
watches through the session routes, the events land in the log and the profile, continue
watching and progress answer, batches are idempotent, and every route's bad input is a 4xx
JSON body naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sona.db import sqlite_url
from sona.events import EventLog
from sona.profile import ProfileStore
from tests.sync.live import Live, call, start, write_config

pytestmark = pytest.mark.slow

USER = "7"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, ml100k_models: Path) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("playback-server")
    server = start(write_config(work / "serving.yaml", ml100k_models))
    yield server
    server.proc.stop()


def _post(live: Live, path: str, body: Any) -> tuple[int, Any]:
    return call("POST", live.url + path, body, key=live.write)


def _get(live: Live, path: str) -> tuple[int, Any]:
    return call("GET", live.url + path, key=live.read)


def _database(live: Live) -> Path:
    return Path(live.proc.config).parent


def test_a_viewer_watches_and_the_log_and_profile_follow(live: Live) -> None:
    profiles = ProfileStore(sqlite_url(_database(live) / "sona.db"))
    before = profiles.event_count(USER)
    status, session = _post(live, "/api/v1/playback/sessions", {
        "user_id": USER, "content_id": 50, "device_id": "tv", "duration_seconds": 7200,
        "quality": "HD", "region": "US"})
    assert status == 200, session
    assert session["state"] == "playing" and session["resume_position_seconds"] == 0.0
    sid = session["session_id"]
    status, body = _post(live, f"/api/v1/playback/sessions/{sid}/heartbeat",
                         {"position_seconds": 1800, "paused": True})
    assert (status, body["state"], body["position_seconds"]) == (200, "paused", 1800)
    status, body = _get(live, f"/api/v1/playback/progress?user_id={USER}&content_id=50")
    assert status == 200 and body["last_position"] == 1800 and body["progress_percentage"] == 25
    status, cont = _get(live, f"/api/v1/playback/continue-watching?user_id={USER}")
    assert status == 200 and [i["content_id"] for i in cont["items"]] == ["50"]
    status, stop = _post(live, f"/api/v1/playback/sessions/{sid}/stop",
                         {"position_seconds": 7000})
    assert status == 200 and stop["event_type"] == "playback_complete"
    assert stop["completion_rate"] == pytest.approx(7000 / 7200)
    status, again = _post(live, f"/api/v1/playback/sessions/{sid}/stop",
                          {"position_seconds": 10})
    assert status == 200 and again["already_stopped"] and again["event_id"] == stop["event_id"]
    status, cont = _get(live, f"/api/v1/playback/continue-watching?user_id={USER}")
    assert cont["items"] == []  # finished: 97% >= 95%
    status, body = _post(live, "/api/v1/playback/progress", {
        "user_id": USER, "content_id": "181", "platform_id": "netflix",
        "progress_seconds": 600, "duration_seconds": 6000, "device_id": "phone",
        "event_id": "p-181-1"})
    assert status == 200 and body["progress_percentage"] == 10.0 and not body["completed"]
    status, events = _get(live, f"/api/v1/events/log?user_id={USER}&limit=10")
    assert status == 200
    assert [e["event_type"] for e in events["events"]] == [
        "playback_start", "playback_pause", "playback_complete", "playback_progress"]
    # the complete (0.97) and the progress (0.1) reached the profile live
    assert profiles.event_count(USER) == before + 2
    session2 = _post(live, "/api/v1/playback/sessions", {
        "user_id": USER, "content_id": "50", "device_id": "tv", "duration_seconds": 7200})[1]
    assert session2["is_rewatch"] is True


def test_event_batches_are_idempotent_and_update_profiles(live: Live) -> None:
    profiles = ProfileStore(sqlite_url(_database(live) / "sona.db"))
    user = "12"
    before = profiles.event_count(user)
    batch = {"events": [
        {"event_id": "b-1", "user_id": user, "event_type": "content_rating",
         "content_id": "172", "timestamp": "2026-12-01T20:00:00Z", "metadata": {"rating": 5}},
        {"event_id": "b-2", "user_id": user, "event_type": "content_view", "content_id": 1},
        {"event_id": "b-3", "user_id": user, "event_type": "search_query",
         "metadata": {"query": "space opera"}, "region": "GB"},
    ]}
    status, body = _post(live, "/api/v1/events/log", batch)
    assert status == 200, body
    assert body["accepted"] == ["b-1", "b-2", "b-3"] and body["viewing_events"] == 2
    status, body = _post(live, "/api/v1/events/log", batch)  # the acknowledgement was lost
    assert status == 200 and body["accepted"] == [] and body["duplicates"] == [
        "b-1", "b-2", "b-3"] and body["viewing_events"] == 0
    assert profiles.event_count(user) == before + 2
    log = EventLog(sqlite_url(_database(live) / "events.db"))
    stored = [s.event for s in log.read(user_id=user)]
    log.close()
    assert [e.event_id for e in stored] == ["b-1", "b-2", "b-3"]
    assert stored[0].metadata == {"rating": 5} and stored[0].timestamp == 1796155200.0
    assert stored[2].region == "GB"


BAD = [  # (method, path, body, status, field named in "fields")
    ("POST", "/api/v1/playback/sessions", {"user_id": "7", "content_id": "50",
                                           "device_id": "tv", "duration_seconds": 0},
     400, "duration_seconds"),
    ("POST", "/api/v1/playback/sessions", {"user_id": "7", "content_id": "50",
                                           "device_id": "t v", "duration_seconds": 60},
     400, "device_id"),
    ("POST", "/api/v1/playback/sessions", {"user_id": "7", "content_id": "no-such-film",
                                           "device_id": "tv", "duration_seconds": 60},
     404, "content_id"),
    ("POST", "/api/v1/playback/sessions", {"user_id": "7", "content_id": "50",
                                           "device_id": "tv", "duration_seconds": 60,
                                           "quality": "8K"}, 400, "quality"),
    ("POST", "/api/v1/playback/sessions/" + "0" * 32 + "/heartbeat",
     {"position_seconds": 5}, 404, "session_id"),
    ("POST", "/api/v1/playback/sessions/not-a-session/heartbeat",
     {"position_seconds": 5}, 400, "session_id"),
    ("POST", "/api/v1/playback/sessions/" + "0" * 32 + "/stop",
     {"position_seconds": -1}, 400, "position_seconds"),
    ("GET", "/api/v1/playback/sessions/" + "0" * 32, None, 404, "session_id"),
    ("POST", "/api/v1/playback/progress", {"user_id": "7", "content_id": "50",
                                           "progress_seconds": 70, "duration_seconds": 60,
                                           "device_id": "tv"}, 400, "body"),
    ("POST", "/api/v1/playback/progress", {"user_id": "7", "content_id": "50",
                                           "progress_seconds": 7, "duration_seconds": 60},
     400, "device_id"),
    ("POST", "/api/v1/playback/progress", {"user_id": "7", "content_id": "nope",
                                           "progress_seconds": 7, "duration_seconds": 60,
                                           "device_id": "tv"}, 404, "content_id"),
    ("GET", "/api/v1/playback/progress?user_id=7", None, 400, "content_id"),
    ("GET", "/api/v1/playback/progress?user_id=7&content_id=1682", None, 404, "content_id"),
    ("GET", "/api/v1/playback/continue-watching?user_id=7&limit=0", None, 400, "limit"),
    ("GET", "/api/v1/playback/continue-watching", None, 400, "user_id"),
    ("POST", "/api/v1/events/log", {"events": []}, 400, "events"),
    ("POST", "/api/v1/events/log", {"events": [{"event_id": "x", "user_id": "7",
                                                "event_type": "content_like"}]},
     400, "events.0.event_type"),
    ("POST", "/api/v1/events/log", {"events": [{"event_id": "x", "user_id": "7",
                                                "event_type": "content_rating",
                                                "content_id": "50",
                                                "metadata": {"rating": 9}}]},
     400, "events.0.metadata.rating"),
    ("POST", "/api/v1/events/log", {"events": [{"event_id": "x", "user_id": "7",
                                                "event_type": "content_rating",
                                                "content_id": "50"}]}, 400, "events.0"),
    ("POST", "/api/v1/events/log", {"events": [{"event_id": "x", "user_id": "7",
                                                "event_type": "playback_start"}]},
     400, "events.0"),
    ("POST", "/api/v1/events/log", {"events": [
        {"event_id": "ok", "user_id": "7", "event_type": "content_view", "content_id": "50"},
        {"event_id": "x", "user_id": "7", "event_type": "content_view",
         "content_id": "zzz"}]}, 404, "events.1.content_id"),
    ("POST", "/api/v1/events/log", {"events": [{"event_id": f"e{i}", "user_id": "7",
                                                "event_type": "search_query"}
                                               for i in range(1001)]}, 400, "events"),
    ("GET", "/api/v1/events/log?user_id=7&limit=abc", None, 400, "limit"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD,
                         ids=[f"{i}-{b[1].split('/')[-1][:20]}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_naming_the_field(live: Live, method: str, path: str, body: Any,
                                            status: int, field: str) -> None:
    key = live.write if method == "POST" else live.read
    got, reply = call(method, live.url + path, body, key=key)
    assert got == status, reply
    assert set(reply) >= {"error", "message", "fields"} and field in reply["fields"], reply
    assert "Traceback" not in reply["message"]


def test_nothing_of_a_rejected_batch_is_stored_and_writes_need_a_key(live: Live) -> None:
    status, body = _post(live, "/api/v1/events/log", {"events": [
        {"event_id": "fine", "user_id": "7", "event_type": "content_view", "content_id": "50"},
        {"event_id": "bad", "user_id": "7", "event_type": "content_view",
         "content_id": "zzz"}]})
    assert status == 404 and body["content_ids"] == ["zzz"]
    log = EventLog(sqlite_url(_database(live) / "events.db"))
    assert not {"fine", "bad"} & log.ids()  # one unknown title: nothing of the batch stored
    log.close()
    status, body = call("POST", live.url + "/api/v1/events/log", {"events": [
        {"event_id": "k", "user_id": "7", "event_type": "search_query"}]})
    assert status == 401 and body["error"]
    status, _ = call("POST", live.url + "/api/v1/events/log", {"events": [
        {"event_id": "k", "user_id": "7", "event_type": "search_query"}]}, key=live.read)
    assert status == 403
