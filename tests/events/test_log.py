"""The event log (issue 11 item 3): idempotent by event id, append-only, on both backends;
the recorder sends only new viewing signals to the profile sink."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from sona.events import EventLog, EventRecorder, LogEvent, completion_of, to_viewing_event
from sona.profile import ViewingEvent


def _ev(event_id: str, kind: str = "content_view", content: str | None = "50",
        user: str = "7", **meta: object) -> LogEvent:
    return LogEvent(event_id, user, kind, 1_700_000_000.0, content, dict(meta))


def test_repeated_ids_are_acknowledged_and_stored_once(db_url: str) -> None:
    log = EventLog(db_url)
    try:
        first = log.append([_ev("a"), _ev("b", "content_rating", rating=4), _ev("a")])
        assert first.stored == ["a", "b"] and first.duplicates == ["a"]
        again = log.append([_ev("b"), _ev("c", "playback_start")])
        assert again.stored == ["c"] and again.duplicates == ["b"]
        stored = log.read()
        assert [s.event.event_id for s in stored] == ["a", "b", "c"]
        assert [s.seq for s in stored] == sorted(s.seq for s in stored)
        assert stored[1].event.metadata == {"rating": 4} and log.count(user_id="7") == 3
        assert [s.event.event_id for s in log.read(after_seq=stored[0].seq, limit=1)] == ["b"]
        assert [s.event.event_id for s in log.latest("7", limit=2)] == ["c", "b"]
        assert [s.event.event_id for s in log.scan(batch_size=2)] == ["a", "b", "c"]
    finally:
        log.close()


@pytest.mark.parametrize("statement", ["UPDATE event_log SET user_id = 'x'",
                                       "DELETE FROM event_log"])
def test_the_database_refuses_updates_and_deletes(db_url: str, statement: str) -> None:
    log = EventLog(db_url)
    try:
        log.append([_ev("a")])
        with pytest.raises(DBAPIError, match="append-only"), log.engine.begin() as conn:
            conn.execute(text(statement))
        assert [s.event.user_id for s in log.read()] == ["7"]
        EventLog(db_url).close()  # opening an existing log again keeps the guards
    finally:
        log.close()


def test_viewing_rules() -> None:
    assert completion_of("playback_start", {}) is None
    assert completion_of("content_view", {}) == 0.3
    assert completion_of("content_rating", {"rating": 2}) == 1.0
    assert completion_of("playback_progress", {"position_seconds": 30,
                                               "duration_seconds": 120}) == 0.25
    with pytest.raises(ValueError, match="metadata.completion_rate"):
        completion_of("playback_abandon", {})
    with pytest.raises(ValueError, match="metadata.rating"):
        completion_of("content_rating", {})
    viewing = to_viewing_event(_ev("x", "playback_complete", completion_rate=0.97,
                                   is_rewatch=True))
    assert viewing == ViewingEvent("50", 1_700_000_000.0, 0.97, None, True, False)
    assert to_viewing_event(_ev("y", "search_query", content=None)) is None


def test_recorder_updates_profiles_from_new_signals_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = EventLog(f"sqlite:///{tmp_path / 'events.db'}")
    seen: list[tuple[str, list[ViewingEvent]]] = []
    recorder = EventRecorder(log, lambda user, events: seen.append((user, events)))
    batch = [_ev("a", rating=None), _ev("b", "content_rating", "181", rating=5),
             _ev("c", "playback_start"), _ev("d", "content_view", "1", user="8")]
    result = recorder.record(batch)
    assert result.stored == ["a", "b", "c", "d"] and result.viewing_events == 3
    assert [(u, [e.content_id for e in evs]) for u, evs in seen] == [
        ("7", ["50", "181"]), ("8", ["1"])]
    seen.clear()
    replay = recorder.record(batch)  # a lost acknowledgement: the client sends it again
    assert replay.stored == [] and replay.viewing_events == 0 and seen == []

    def broken(user: str, events: list[ViewingEvent]) -> None:  # an injected fault
        raise RuntimeError("profile store down")

    failing = EventRecorder(log, broken).record([_ev("e")])
    assert failing.stored == ["e"] and failing.profile_errors == {"7": "profile store down"}
    assert "e" in log.ids()
    log.close()
