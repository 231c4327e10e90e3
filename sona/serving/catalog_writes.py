"""Catalog writes are serial across the worker processes and resolve against the committed
catalog (issue 12).

A webhook event is resolved against the worker's in-memory
:class:`~sona.ingest.resolution.EntityResolver` (the titles and ids of the known catalog
items) and then written: a new entity becomes a new catalog item. With several workers,
each resolver learned only what its own worker wrote, so a title created by worker A (admin
API or webhook) was unknown to worker B, and B's next webhook for it created a duplicate
item; two workers resolving the same new title at once both created it.

:class:`CatalogWrites` is the one way into a catalog write (the
:class:`~sona.serving.catalog_api.CatalogHandler` enters it around every mutating call):

1. it holds the cross-process lock :data:`LOCK` (``SharedState.lock``: one writer at a
   time among every thread of every worker, as the former in-process lock did for one
   worker's threads);
2. under the lock it catches the resolver up: it reads the catalog topic of the relay as a
   journal (:meth:`SharedState.messages <sona.shared.SharedState.messages>`) from
   where it last read, and re-reads the items of every ``changed`` message from the
   catalog database (:func:`~sona.ingest.pipeline.refresh_resolver`: stored items are
   registered with their mappings, deleted ones forgotten);
3. then the write resolves and commits, and its store commits are published by the
   :class:`~sona.serving.catalog_relay.CatalogRelay` before the lock is released.

Exact, no time window: every catalog write of the server runs under the lock and publishes
its commits before releasing it, so the journal read in step 2 holds every commit made
before the lock was taken, and the resolver reflects all of them before anything is
resolved. The same code runs with one worker (the journal then holds its own commits, which
re-reading leaves as they are, and the commits that did not go through the resolver, such
as the start-up seeding of an empty catalog). Messages pruned before a worker read them
(a worker that wrote nothing for :data:`~sona.shared.RELAY_KEEP_S`) make it
re-read the whole catalog once. Writes made by another program straight to the catalog
database (``sona ingest run``) publish nothing; a restart picks them up, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sona.catalog.store import CatalogStore
from sona.ingest.pipeline import refresh_resolver
from sona.ingest.resolution import EntityResolver
from sona.serving.catalog_relay import TOPIC
from sona.shared import SharedState

log = logging.getLogger(__name__)

#: name of the cross-process lock held by every catalog write
LOCK = "catalog-writes"


class CatalogWrites:
    """Serialises catalog writes across workers and catches the resolver up first.

    Args:
        shared: the server's shared state (lock and relay journal).
        store: this worker's catalog store (re-read for the changed items).
        resolver: this worker's entity resolver (``None``: serialise only).
        after: relay sequence number the resolver already reflects: the ``head`` taken
            before the resolver was loaded from the store (default: the newest now).
    """

    def __init__(self, shared: SharedState, store: CatalogStore,
                 resolver: EntityResolver | None, *, after: int | None = None) -> None:
        self.shared = shared
        self.store = store
        self.resolver = resolver
        self._after = shared.head() if after is None else int(after)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        """Hold the catalog write lock with the resolver caught up (see module docstring)."""
        with self.shared.lock(LOCK):
            self.catch_up()
            yield

    def catch_up(self) -> int:
        """Apply the catalog changes published since the last call to the resolver; returns
        how many item ids were re-read (``-1``: the whole catalog). The caller holds
        :data:`LOCK` for the result to be complete."""
        top, messages = self.shared.messages(TOPIC, self._after)
        if self.resolver is None:
            self._after = top
            return 0
        if messages is None:
            log.info("catalog changes after relay message %d were pruned: re-reading the "
                     "whole catalog into the resolver", self._after)
            refresh_resolver(self.resolver, self.store)
            self._after = top
            return -1
        ids = sorted({str(i) for m in messages if m.get("kind") == "changed"
                      for i in m.get("ids", ())})
        if ids:
            refresh_resolver(self.resolver, self.store, ids)
        self._after = top  # after the refresh: a failed one is retried by the next write
        return len(ids)


__all__ = ["LOCK", "CatalogWrites"]
