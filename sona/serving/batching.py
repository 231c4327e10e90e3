"""Micro-batching of concurrent requests on the event loop (issue 12).

The async recommendations endpoint ranks on the event loop. :class:`MicroBatcher` queues the
requests that reach it and hands them to one ``run`` call: the first request of an idle
period is run on the next loop iteration (alone unless others arrived with it), and those
that arrive while a batch runs are run together next, up to ``max_batch`` at a time. ``run``
answers each item on its own (a result or that item's exception), so batching changes no
answer, only how many requests share one ``Pipeline.rank`` call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Runs queued items in batches of at most ``max_batch`` through ``run``.

    Args:
        run: answers for a batch, one per item in order (a result, or the item's exception).
        max_batch: the most items of one ``run`` call.
    """

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R | Exception]], *,
                 max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.run = run
        self.max_batch = max_batch
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


__all__ = ["MicroBatcher"]
