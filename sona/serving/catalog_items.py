"""The served pipeline follows the catalog: cold items in, removed items out (issue 11).

Catalog writes through the admin API and processed platform webhooks announce an
:class:`~sona.ingest.pipeline.IndexUpdate`; :class:`CatalogItemsFollower.apply`, one of
:attr:`SonaApp.index_listeners <sona.serving.app.SonaApp.index_listeners>` next to the
search index's, hands it to one background thread and returns, so a catalog write never
waits for an embedding. That thread re-reads the written items from the catalog (an item
deleted since counts as removed), changes a :meth:`~sona.pipeline.Pipeline.copy` of the
served pipeline with :meth:`~sona.pipeline.Pipeline.add_items` /
:meth:`~sona.pipeline.Pipeline.remove_items`, the calls an offline test makes, and swaps
it in with :meth:`ModelStore.update`: a request sees the old or the new item space, never
a mix. With several serving workers, the catalog relay
(:mod:`sona.serving.catalog_relay`) calls :meth:`~CatalogItemsFollower.apply` of every
other worker with the same ids once the write is committed, so each worker's pipeline
gains and loses the same items.

Every version the store loads (start-up, a promoted champion, a reload) first gets the
catalog's current state (:meth:`CatalogItemsFollower.prepare`): catalog items the
pipeline was not trained on join as cold items (an upserted item it knows is only made
servable again), and items the catalog deleted
(``content_deleted`` in its audit log, not back since) are removed. MovieLens seed ids the
pipeline lacks stay out: they are the items the training split held out, which the
evaluation never ranked, so serving them would make the served lists differ from the
evaluated ones (``tests/serving/test_served_equals_offline.py``).

An item's text is the search documents' text (:func:`~sona.pipeline.catalog_item_texts`),
embedded by the pipeline's own encoder (model and version checked against the fitted
vectors'); this process keeps one encoder loaded, in memory only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from sona.catalog.schema import ContentItem, is_seed_id
from sona.catalog.store import CatalogStore
from sona.ingest.pipeline import IndexUpdate
from sona.pipeline import Pipeline, catalog_item_texts
from sona.pipeline.features import text_encoder
from sona.search.documents import documents_from_items
from sona.serving.model_store import LoadedModel, ModelStore

log = logging.getLogger(__name__)

#: audit action of a catalog deletion (admin DELETE, a webhook's last offer removed)
DELETED = "content_deleted"


class CatalogItemsFollower:
    """Keeps the served pipeline's item space in step with the catalog.

    Args:
        store: the served model; :meth:`prepare` is its load hook.
        catalog: the catalog store the admin API and webhooks write.
    """

    def __init__(self, store: ModelStore, catalog: CatalogStore) -> None:
        self.store = store
        self.catalog = catalog
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sona-cold-items")
        self._encoders: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()  # one encoder user at a time (start-up and listener)
        self.last_error: str | None = None

    # --- listener ---------------------------------------------------------------------

    def apply(self, update: IndexUpdate) -> None:
        """Index listener: schedule the update on the background thread and return
        (:meth:`wait` blocks until it is served)."""
        self._executor.submit(self._run, list(update.upsert_ids), list(update.removed_ids))

    def _run(self, upsert_ids: list[str], removed_ids: list[str]) -> None:
        try:
            start = time.perf_counter()
            found = [i for i in (self.catalog.find(c) for c in upsert_ids) if i is not None]
            gone = [*removed_ids, *(set(upsert_ids) - {i.canonical_id for i in found})]
            changed = self.store.update(lambda m: self._changed(m, found, gone))
            if changed is not None:
                log.info("served items: %d upserted, %d removed in %.3f s (%d items)",
                         len(found), len(gone), time.perf_counter() - start,
                         len(changed.items))
            self.last_error = None
        except Exception as exc:  # keep serving the previous item space; report on /ready
            self.last_error = f"applying catalog changes failed: {exc}"
            log.exception("applying catalog changes %s / %s to the served pipeline failed",
                          upsert_ids, removed_ids)

    # --- load hook --------------------------------------------------------------------

    def prepare(self, model: LoadedModel) -> LoadedModel:
        """``model`` with the catalog's items it lacks added and deleted items removed."""
        items = list(self.catalog.iter_items())
        known = _known(model.pipeline, [i.canonical_id for i in items])
        deleted = sorted({r.resource_id for r in self.catalog.audit_log(
            action=DELETED, limit=1_000_000) if r.resource_id})
        gone = [c for c in deleted if self.catalog.find(c) is None]
        out = self._changed(model, [i for i, k in zip(items, known, strict=True) if not k],
                            gone)
        if model.pipeline.config.content.source == "text":  # load the encoder off requests
            self._executor.submit(self._warm_encoder, model.pipeline)
        delta = out.pipeline.delta()
        if delta is not None:
            log.info("catalog applied to %s v%s: %d cold items, %d removed", model.name,
                     model.version, len(delta.ids), len(delta.removed))
        return out

    # --- the change -------------------------------------------------------------------

    def _changed(self, model: LoadedModel, items: Sequence[ContentItem],
                 removed: Sequence[str]) -> LoadedModel:
        """``model`` with ``items`` added and ``removed`` masked (itself when nothing
        changes); the served pipeline is copied, never changed in place."""
        pipeline = model.pipeline
        delta = pipeline.delta()
        n_trained = len(pipeline.items_) if delta is None else delta.n_trained
        idx = pipeline.items_.numbers([i.canonical_id for i in items], missing="negative") \
            if items else np.empty(0, np.int64)
        # a removed item written again is servable again (a trained one keeps its vector)
        masked = set() if delta is None else set(delta.removed.tolist())
        back = [i.canonical_id for i, t in zip(items, idx, strict=True)
                if t in masked and t < n_trained]
        # cold: ones added before (new text) and non-seed ones (a seed it lacks was held out)
        cold = [i for i, t in zip(items, idx, strict=True)
                if t >= n_trained or (t < 0 and not is_seed_id(i.canonical_id))]
        if cold and pipeline.config.content.source != "text":
            log.warning("%d catalog items not served: the pipeline's content source %r "
                        "cannot embed their text", len(cold), pipeline.config.content.source)
            cold = []
        removed = [c for c, k in zip(removed, _known(pipeline, removed), strict=True) if k]
        if not back and not cold and not removed:
            return model
        new = pipeline.copy()
        if back:  # the vectors are ignored: trained items keep their fitted ones
            new.add_items(back, vectors=np.zeros((len(back), pipeline.features_.dim)))
        if cold:
            texts = catalog_item_texts(documents_from_items(cold))
            ids = [i.canonical_id for i in cold]
            with self._lock:
                new.add_items(ids, texts=[texts[c] for c in ids],
                              genres=[i.genres for i in cold],
                              runtimes=[i.runtime_minutes for i in cold],
                              encoder=self._encoder(new))
        if removed:
            new.remove_items(removed)
        return replace(model, pipeline=new)

    def _warm_encoder(self, pipeline: Pipeline) -> None:
        try:
            with self._lock:
                self._encoder(pipeline).encode(["warm up the catalog item encoder"])
        except Exception as exc:  # the first catalog write loads it instead
            log.warning("catalog item encoder warm-up failed: %s", exc)

    def _encoder(self, pipeline: Pipeline) -> Any:
        content = pipeline.config.content
        key = (content.encoder_model, str(content.cache_dir))
        if key not in self._encoders:
            # memory only: the serving worker's working directory is not the repository's
            self._encoders[key] = text_encoder(replace(content, cache_dir=None))
        return self._encoders[key]

    def wait(self) -> None:
        """Block until every update scheduled so far is applied (tests, shutdown)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        """Finish the scheduled updates and stop the background thread."""
        self._executor.shutdown(wait=True)


def _known(pipeline: Pipeline, item_ids: Sequence[str]) -> list[bool]:
    """Whether the pipeline knows each id (trained or cold; ``"50"`` finds integer 50)."""
    if not item_ids:
        return []
    return (pipeline.items_.numbers(list(item_ids), missing="negative") >= 0).tolist()


__all__ = ["DELETED", "CatalogItemsFollower"]
