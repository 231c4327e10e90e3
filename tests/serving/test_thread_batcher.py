"""ThreadBatcher (issue 12): new search queries waiting for the encoder share its passes.

Batches are made to form deterministically: the first batch's ``run`` blocks until the
test has queued the others, so no assertion depends on timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sona.embeddings import TextEncoder
from sona.serving.batching import ThreadBatcher
from sona.serving.search_http import _LoadOnce


class Gate:
    """A ``run`` that answers ``item * 10`` and holds its first batch until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(10)
        return [ValueError(f"bad item {i}") if i < 0 else i * 10 for i in items]


def _queued(batcher: ThreadBatcher, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(batcher._queue) < n:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.001)


def test_calls_during_a_batch_run_together_next() -> None:
    gate = Gate()
    batcher: ThreadBatcher[int, int] = ThreadBatcher(gate, max_batch=4)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.submit, 1)
        assert gate.started.wait(10)
        rest = [pool.submit(batcher.submit, i) for i in range(2, 8)]
        _queued(batcher, 6)
        gate.release.set()
        assert first.result(10) == 10
        assert [f.result(10) for f in rest] == [i * 10 for i in range(2, 8)]
    # the first alone, then the six waiting ones in batches of at most four
    assert gate.batches[0] == [1]
    assert sorted(i for b in gate.batches[1:] for i in b) == list(range(2, 8))
    assert [len(b) for b in gate.batches[1:]] == [4, 2]
    assert (batcher.batches, batcher.items) == (3, 7)
    assert batcher.submit(9) == 90  # idle again: runs at once on the caller's thread


def test_each_caller_gets_its_own_exception_and_a_failed_run_reaches_all() -> None:
    gate = Gate()
    batcher: ThreadBatcher[int, int] = ThreadBatcher(gate)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.submit, 1)
        assert gate.started.wait(10)
        good, bad = pool.submit(batcher.submit, 2), pool.submit(batcher.submit, -3)
        _queued(batcher, 2)
        gate.release.set()
        assert (first.result(10), good.result(10)) == (10, 20)
        with pytest.raises(ValueError, match="bad item -3"):
            bad.result(10)



def test_a_run_with_the_wrong_number_of_answers_fails_its_batch() -> None:
    gate = Gate()

    def one_answer(items: Sequence[int]) -> list[int | Exception]:
        gate(items)
        return [1]

    batcher: ThreadBatcher[int, int] = ThreadBatcher(one_answer)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.submit, 1)
        assert gate.started.wait(10)
        rest = [pool.submit(batcher.submit, 2), pool.submit(batcher.submit, 3)]
        _queued(batcher, 2)
        gate.release.set()
        assert first.result(10) == 1
        for f in rest:
            with pytest.raises(RuntimeError, match="1 answers for 2 items"):
                f.result(10)
    assert batcher.submit(4) == 1  # and the batcher goes on


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        ThreadBatcher(lambda items: list(items), max_batch=0)


def test_concurrent_new_queries_get_their_own_vectors() -> None:
    # the real MiniLM encoder behind the search service's wrapper: 24 queries from 6
    # threads share passes and each gets the vector it gets alone (up to float rounding)
    encoder = TextEncoder()
    queries = [f"{w} movie from the {d}s" for w in ("space", "funny", "scary", "sad")
               for d in (50, 60, 70, 80, 90, 20)]
    alone = np.stack([encoder.encode([q], use_cache=False)[0] for q in queries])
    wrapped = _LoadOnce(encoder)
    wrapped.encode(["load it"], use_cache=False)
    with ThreadPoolExecutor(6) as pool:
        shared = list(pool.map(lambda q: wrapped.encode([q], use_cache=False), queries))
    assert all(v.shape == (1, alone.shape[1]) for v in shared)
    np.testing.assert_allclose(np.concatenate(shared), alone, atol=1e-5)
    assert wrapped.batcher.items == len(queries)
    # lists, several texts, and a bare string go to the encoder as before
    np.testing.assert_allclose(wrapped.encode(queries[:3], use_cache=False), alone[:3],
                               atol=1e-5)
    with pytest.raises(TypeError):
        wrapped.encode("space", use_cache=False)  # type: ignore[arg-type]
