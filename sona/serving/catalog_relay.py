"""Catalog changes reach every worker process of the server (issue 12).

A catalog write (admin catalog API, a processed webhook) is answered by one worker. That
worker's in-memory views follow it at once, through two in-process paths:

- the catalog store's change listeners (:attr:`CatalogStore.listeners
  <sona.catalog.store.CatalogStore.listeners>`, told the ids after each commit): the
  where-to-watch :class:`~sona.catalog.availability.AvailabilityIndex` re-reads them;
- the :class:`~sona.ingest.pipeline.IndexUpdate` the write announces (``on_index_update``):
  :attr:`SonaApp.index_listeners <sona.serving.app.SonaApp.index_listeners>`, the live
  search index (:meth:`SearchService.apply <sona.serving.search_http.SearchService.apply>`)
  and the served pipeline's cold items (:meth:`CatalogItemsFollower.apply
  <sona.serving.catalog_items.CatalogItemsFollower.apply>`).

:class:`CatalogRelay` carries both to the other workers over the
:class:`~sona.shared.SharedState` relay, topic :data:`TOPIC`, once the change is
committed: ``{"kind": "changed", "ids": [...]}`` for a store commit
(:attr:`CatalogStore.on_commit <sona.catalog.store.CatalogStore.on_commit>`) and ``{"kind":
"index", "upsert_ids": [...], "removed_ids": [...], "payloads": [...]}`` for an index update
(vectors stay home: every listener re-reads the written rows from the catalog database,
which all workers share, and embeds them itself). A receiving worker applies them through
the very same functions, :meth:`CatalogStore.notify <sona.catalog.store.CatalogStore.notify>`
and the ``index_listeners``, which never publish (no echo). The same code runs with one
worker: it publishes to nobody.

Threads: relay handlers run on the shared state's tailer thread, which also delivers other
topics, while a search update embeds text and waits for the search write lock. So a
received change only queues on this relay's one background thread (``sona-catalog-relay``),
which applies the changes in publish order; :meth:`CatalogRelay.wait` blocks until the
queued ones are applied. The other workers see a change about ``poll_s`` plus that
application later; the writing worker sees it before its response. Delivery is at least
once and every application re-reads the rows, so a repeated or reordered message leaves
the latest committed state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sona.catalog.store import CatalogStore
from sona.ingest.pipeline import IndexUpdate, IndexUpdater
from sona.shared import SharedState

log = logging.getLogger(__name__)

#: relay topic of catalog changes
TOPIC = "catalog"


class CatalogRelay:
    """Publishes this worker's catalog changes and applies the other workers'.

    Args:
        shared: the server's shared state (its relay carries the changes).
        store: this worker's catalog store; its commits are published (``on_commit``) and
            the other workers' commits are handed to its listeners (``notify``).
        index_listeners: this worker's index listeners (the list itself: listeners added
            later are called too), given every local and every relayed index update.
    """

    def __init__(self, shared: SharedState, store: CatalogStore,
                 index_listeners: Sequence[IndexUpdater]) -> None:
        self.shared = shared
        self.store = store
        self.index_listeners = index_listeners
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="sona-catalog-relay")
        store.on_commit = self._committed
        shared.subscribe(TOPIC, self._received)

    # --- this worker's changes ----------------------------------------------------------

    def index_updated(self, update: IndexUpdate) -> None:
        """The ``on_index_update`` of the catalog handler: apply ``update`` to this worker's
        listeners (errors reach the caller, as before), then publish it to the others."""
        try:
            self._apply(update)
        finally:
            self._publish({"kind": "index", "upsert_ids": [str(i) for i in update.upsert_ids],
                           "removed_ids": [str(i) for i in update.removed_ids],
                           "payloads": update.payloads})

    def _committed(self, ids: list[str]) -> None:
        self._publish({"kind": "changed", "ids": [str(i) for i in ids]})

    def _publish(self, payload: dict[str, Any]) -> None:
        try:
            self.shared.publish(TOPIC, payload)
        except Exception:  # committed already: the write must not fail for the relay
            log.exception("publishing a catalog change to the other workers failed")

    def _apply(self, update: IndexUpdate) -> None:
        for listener in list(self.index_listeners):
            listener(update)

    # --- the other workers' changes -----------------------------------------------------

    def _received(self, payload: dict[str, Any]) -> None:
        """Relay handler (tailer thread): queue the change for the background thread."""
        try:
            self._executor.submit(self._apply_received, payload)
        except RuntimeError:  # closed: this worker is shutting down
            log.debug("catalog relay closed; dropped %s", payload)

    def _apply_received(self, payload: dict[str, Any]) -> None:
        try:
            kind = payload.get("kind")
            if kind == "changed":
                self.store.notify([str(i) for i in payload["ids"]])
            elif kind == "index":
                self._apply(IndexUpdate(
                    upsert_ids=[str(i) for i in payload["upsert_ids"]], vectors=None,
                    payloads=list(payload.get("payloads", [])),
                    removed_ids=[str(i) for i in payload["removed_ids"]]))
            else:
                log.warning("ignoring a catalog relay message of kind %r", kind)
        except Exception:  # keep applying the next changes
            log.exception("applying another worker's catalog change failed: %s", payload)

    def wait(self) -> None:
        """Block until every change received so far is applied (tests, shutdown)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        """Stop publishing; apply the changes already received, then stop the thread."""
        if self.store.on_commit == self._committed:
            self.store.on_commit = None
        self._executor.shutdown(wait=True)


__all__ = ["TOPIC", "CatalogRelay"]
