"""Micro-batching of concurrent requests on the event loop (issue 12).

The async recommendations endpoint ranks on the event loop. :class:`MicroBatcher` queues the
requests that reach it and hands them to one ``run`` call: the first request of an idle
period is run on the next loop iteration (alone unless others arrived with it), and those
that arrive while a batch runs are run together next, up to ``max_batch`` at a time. ``run``
answers each item on its own (a result or that item's exception), so batching changes no
answer, only how many requests share one ``Pipeline.rank`` call.

:class:`ThreadBatcher` does the same for callers on worker threads (the search API's new
queries, each waiting for the query encoder): the caller that finds it idle runs a batch
of what is queued, those that arrive meanwhile wait, and when the batch is done the first
of them runs the next one. One MiniLM forward pass over 4 short queries costs about what
1.6 single ones do on this box's CPU, so under load each new query pays less.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _max_batch(max_batch: int) -> int:
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return max_batch


class MicroBatcher(Generic[T, R]):
    """Runs queued items in batches of at most ``max_batch`` through ``run``.

    Args:
        run: answers for a batch, one per item in order (a result, or the item's exception).
        max_batch: the most items of one ``run`` call.
    """

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R | Exception]], *,
                 max_batch: int = 32) -> None:
        self.run = run
        self.max_batch = _max_batch(max_batch)
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._draining = False

    async def submit(self, item: T) -> R:
        """``item``'s answer from the next batch (its exception raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                try:
                    answers = list(self.run([item for item, _ in batch]))
                    if len(answers) != len(batch):
                        raise RuntimeError(f"{len(answers)} answers for {len(batch)} items")
                except Exception as exc:  # noqa: BLE001 - every waiting request gets it
                    answers = [exc] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # its request was cancelled (client gone, timeout)
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                # the answered requests reply, and those that arrived meanwhile queue up
                await asyncio.sleep(0)
        finally:
            self._draining = False


class _Slot(Generic[T, R]):
    """One waiting call: its item, then its answer or the order to run the next batch."""

    __slots__ = ("answer", "done", "item", "lead")

    def __init__(self, item: T) -> None:
        self.item = item
        self.answer: R | Exception | None = None
        self.lead = False
        self.done = threading.Event()


class ThreadBatcher(Generic[T, R]):
    """Runs the items submitted from several threads in batches through ``run``.

    ``submit`` blocks its thread until the item's answer is there. No thread waits for a
    timer: a call that finds no batch running runs one at once (with whatever was queued),
    calls that arrive during a batch queue up, and the first of them runs the next batch
    (of at most ``max_batch``) as soon as the current one ends.

    Args:
        run: answers for a batch, one per item in order (a result, or the item's exception).
        max_batch: the most items of one ``run`` call.
    """

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R | Exception]], *,
                 max_batch: int = 16) -> None:
        self.run = run
        self.max_batch = _max_batch(max_batch)
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._running = False
        self.batches = 0  # run calls made (items / batches: the mean batch size)
        self.items = 0

    def submit(self, item: T) -> R:
        """``item``'s answer (its exception raised here)."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead = slot.lead = not self._running
            self._running = True
        if not lead:
            slot.done.wait()
        if slot.lead:
            self._run_next()
        answer = slot.answer
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]  # set by the batch that ran it

    def _run_next(self) -> None:
        """Run the head of the queue (this thread's own slot is in it), answer every item,
        then hand the next batch to the first caller still waiting."""
        with self._lock:
            batch = self._queue[:self.max_batch]
            del self._queue[:self.max_batch]
        try:
            answers = list(self.run([s.item for s in batch]))
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets it
            answers = [exc] * len(batch)
        with self._lock:
            self.batches += 1
            self.items += len(batch)
            following = self._queue[0] if self._queue else None
            if following is None:
                self._running = False
            else:
                following.lead = True
        for s, answer in zip(batch, answers, strict=True):
            s.answer = answer
            s.lead = False  # (the leader's own slot: it is past its check)
            s.done.set()
        if following is not None:
            following.done.set()


__all__ = ["MicroBatcher", "ThreadBatcher"]
