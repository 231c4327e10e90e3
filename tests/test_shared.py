"""SharedState: versions, locks and the relay across instances (and real processes)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
from pathlib import Path

import pytest

from sona.shared import SharedState


@pytest.fixture()
def pair(tmp_path: Path):
    a = SharedState(tmp_path, slots=64)
    b = SharedState(tmp_path, slots=64)
    yield a, b
    a.close()
    b.close()


def test_versions_are_seen_by_the_other_instance(pair) -> None:
    a, b = pair
    before = b.version("user", "42")
    a.bump("user", "42")
    assert b.version("user", "42") == before + 1
    assert a.version("user", "42") == before + 1


def test_relay_delivers_other_instances_messages_in_order(pair) -> None:
    a, b = pair
    got_a: list[dict] = []
    got_b: list[dict] = []
    a.subscribe("catalog", got_a.append)
    b.subscribe("catalog", got_b.append)
    a.publish("catalog", {"n": 1})
    a.publish("catalog", {"n": 2})
    b.publish("other", {"n": 3})
    assert b.poll() == 2
    assert a.poll() == 0  # its own messages and a topic it does not follow
    assert got_b == [{"n": 1}, {"n": 2}]
    assert got_a == []
    assert b.poll() == 0  # delivered once


def test_relay_starts_after_history_and_survives_a_bad_handler(tmp_path: Path) -> None:
    a = SharedState(tmp_path)
    a.publish("t", {"old": True})
    b = SharedState(tmp_path)
    seen: list[dict] = []
    b.subscribe("t", lambda p: (_ for _ in ()).throw(RuntimeError("boom")))
    b.subscribe("t", seen.append)
    a.publish("t", {"old": False})
    assert b.poll() == 2
    assert seen == [{"old": False}]
    with pytest.raises(TypeError):
        a.publish("t", {"bad": object()})
    a.close()
    b.close()


def test_relay_reads_as_a_journal_and_reports_pruned_messages(pair) -> None:
    a, b = pair
    start = b.head()
    a.publish("catalog", {"n": 1})
    b.publish("other", {"n": 2})
    b.publish("catalog", {"n": 3})
    top, messages = b.messages("catalog", start)
    assert top == start + 3 == a.head()
    assert messages == [{"n": 1}, {"n": 3}]  # every instance's, its own included
    assert b.messages("catalog", top) == (top, [])
    # a pruned message (older than RELAY_KEEP_S) makes the journal incomplete
    with sqlite3.connect(a.directory / f"{a.name}.relay.db") as conn:
        conn.execute("DELETE FROM relay WHERE seq = ?", (start + 2,))
    assert b.messages("catalog", start) == (top, None)
    assert b.messages("catalog", start + 2) == (top, [{"n": 3}])
    with sqlite3.connect(a.directory / f"{a.name}.relay.db") as conn:
        conn.execute("DELETE FROM relay")
    assert b.head() == top  # the sequence survives pruning
    assert b.messages("catalog", top) == (top, [])
    assert b.messages("catalog", top - 1) == (top, None)
    assert b.messages("catalog", top + 1) == (top, None)  # a replaced relay file


def test_tailer_thread_delivers(pair) -> None:
    a, b = pair
    done = threading.Event()
    b.subscribe("t", lambda p: done.set())
    b.start()
    a.publish("t", {})
    assert done.wait(5.0)


def test_lock_names_are_checked(pair) -> None:
    with pytest.raises(ValueError, match="lock names"):
        with pair[0].lock("../x"):
            pass


def _count(directory: str, n: int) -> None:
    state = SharedState(directory, slots=64)
    path = Path(directory) / "counter.txt"
    for _ in range(n):
        with state.lock("count"):  # read-modify-write of a file: lost updates without it
            value = int(path.read_text())
            path.write_text(str(value + 1))
        state.bump("hits")
    state.close()


def test_lock_and_bump_across_processes(tmp_path: Path) -> None:
    (tmp_path / "counter.txt").write_text("0")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_count, args=(str(tmp_path), 200)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert (tmp_path / "counter.txt").read_text() == "600"
    state = SharedState(tmp_path, slots=64)
    assert state.version("hits") == 600
    state.close()
