"""Playback sessions, progress and continue watching (issue 11 item 3) on SQLite and
PostgreSQL: events land in the log with SPEC completion rates and the rewatch rule, the
profile sink gets only viewing signals, sessions expire, unknown titles are 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sona.events import EventLog, EventRecorder
from sona.playback import PlaybackConfig, PlaybackError, PlaybackService, PlaybackStore
from sona.profile import ViewingEvent

CATALOG = {"50", "181", "172", "1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[PlaybackService, EventLog,
                                                          list[tuple[str, ViewingEvent]],
                                                          Clock]]:
    log = EventLog(db_url)
    store = PlaybackStore(db_url)
    seen: list[tuple[str, ViewingEvent]] = []
    clock = Clock()
    recorder = EventRecorder(log, lambda user, evs: seen.extend((user, e) for e in evs))
    service = PlaybackService(store, recorder, clock=clock, config=PlaybackConfig(),
                              unknown_content=lambda ids: [i for i in ids if i not in CATALOG])
    yield service, log, seen, clock
    store.close()
    log.close()


def test_session_lifecycle_logs_events_and_the_viewing_event(world) -> None:  # type: ignore[no-untyped-def]
    service, log, seen, clock = world
    session = service.start("7", "50", device_id="tv", duration_seconds=7200, quality="HD")
    clock.now += 600
    service.heartbeat(session.session_id, 600)
    clock.now += 60
    service.heartbeat(session.session_id, 660, paused=True)
    clock.now += 60
    service.heartbeat(session.session_id, 660, paused=False)
    resume = service.progress("7", "50")
    assert resume.progress_seconds == 660 and round(resume.completion, 4) == 0.0917
    clock.now += 3000
    stop = service.stop(session.session_id, 3600)
    assert stop.event_type == "playback_abandon" and stop.session.completion_rate == 0.5
    assert [s.event.event_type for s in log.read()] == [
        "playback_start", "playback_pause", "playback_resume", "playback_abandon"]
    assert seen == [("7", ViewingEvent("50", clock.now, 0.5, None, False, False))]
    again = service.stop(session.session_id, 7000)  # a retried stop records nothing
    assert again.already_stopped and again.event_type == "playback_abandon"
    assert log.count() == 4 and len(seen) == 1
    with pytest.raises(PlaybackError) as err:
        service.heartbeat(session.session_id, 10)
    assert err.value.status == 409
    assert [p.content_id for p in service.continue_watching("7")] == ["50"]


def test_completion_threshold_rewatch_and_continue_watching(world) -> None:  # type: ignore[no-untyped-def]
    service, log, seen, clock = world
    first = service.start("7", "181", device_id="tv", duration_seconds=100)
    clock.now += 10
    assert service.stop(first.session_id, 96).event_type == "playback_complete"  # 0.96 >= 0.95
    assert service.continue_watching("7") == []  # finished titles are not "continue"
    clock.now += 10
    second = service.start("7", "181", device_id="phone", duration_seconds=100)
    assert second.is_rewatch
    clock.now += 10
    service.stop(second.session_id, 40)
    assert [(e.completion_rate, e.is_rewatch) for _, e in seen] == [(0.96, False), (0.4, True)]
    clock.now += 10
    service.upsert_progress("7", "172", progress_seconds=30, duration_seconds=60,
                            device_id="web")
    clock.now += 10
    service.upsert_progress("7", "1", progress_seconds=59, duration_seconds=60)
    listed = service.continue_watching("7")
    assert [p.content_id for p in listed] == ["172", "181"]  # most recent first, "1" finished
    assert service.continue_watching("7", limit=1)[0].content_id == "172"
    assert listed[0].to_dict()["progress_percentage"] == 50.0
    # another report of the finished viewing is not a rewatch; starting again after it is
    service.upsert_progress("7", "1", progress_seconds=60, duration_seconds=60)
    service.upsert_progress("7", "1", progress_seconds=5, duration_seconds=60)
    assert [e.is_rewatch for _, e in seen[-3:]] == [False, False, True]
    assert service.progress("7", "1").times_completed == 1


def test_progress_event_ids_make_retries_idempotent(world) -> None:  # type: ignore[no-untyped-def]
    service, log, seen, _ = world
    for _ in range(2):
        service.upsert_progress("7", "50", progress_seconds=10, duration_seconds=20,
                                event_id="client-42")
    assert log.count() == 1 and len(seen) == 1 and seen[0][1].completion_rate == 0.5


def test_unknown_content_expired_and_unknown_sessions(world) -> None:  # type: ignore[no-untyped-def]
    service, log, _, clock = world
    with pytest.raises(PlaybackError) as err:
        service.start("7", "nope", device_id="tv", duration_seconds=10)
    assert (err.value.status, err.value.fields) == (404, ["content_id"])
    assert "nope" in err.value.message and log.count() == 0
    with pytest.raises(PlaybackError) as err:
        service.upsert_progress("7", "nope", progress_seconds=1, duration_seconds=10)
    assert err.value.status == 404
    with pytest.raises(PlaybackError) as err:
        service.progress("7", "50")
    assert err.value.status == 404
    session = service.start("7", "50", device_id="tv", duration_seconds=10)
    clock.now += 86_400
    with pytest.raises(PlaybackError) as err:
        service.heartbeat(session.session_id, 5)
    assert err.value.status == 410
    assert service.session(session.session_id).to_dict(now=clock.now)["state"] == "expired"
    assert service.purge_expired() == 1
    with pytest.raises(PlaybackError) as err:
        service.stop(session.session_id, 5)
    assert err.value.status == 404
