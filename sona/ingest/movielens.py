"""MovieLens-100K as a catalog source: the seed every platform feed resolves onto.

The ML-100K item files (``ml-100k.item``: title, year, genres; ``ml-100k.kg`` and
``ml-100k.link``: Freebase facts) become one :class:`~sona.catalog.schema.ContentItem` per
MovieLens item whose ``canonical_id`` is the MovieLens item id as a string (``"50"`` is Star
Wars). Model item ids, search document ids and catalog ids are thus one id space: the
leaderboard, the search qrels and the catalog name a film the same way, with no mapping
table to translate through. (The RecBole copy of ML-100K that ships here has no IMDb URL
column, so seeded items carry no IMDb id; feeds that do fill it in when they resolve.)

A seeded item holds:

- ``title``: the display title (leading article restored, :func:`split_movielens_title`);
  the foreign title and the raw MovieLens spelling are ``alternate_titles`` (keys ``und``
  and ``und-x-movielens``), so users and the resolver match any of them;
- ``release_year``, canonical ``genres``;
- ``overview``: genres, year and the KG facts (sequels, shared directors, awards), the
  sentence :func:`~sona.search.documents.describe` writes;
- ``average_rating`` (mean rating x 2, 0-10), ``rating_count`` and ``popularity_score``
  (log(1 + n) / log(1 + max n)) from the ratings;
- ``data_quality_score`` from :func:`~sona.ingest.quality.quality_score`, like every item.

:func:`seed_catalog` writes the items that are missing and the ``(item id, "movielens")``
entity mappings; items already in the catalog are left as they are (feeds and admin edits
have enriched them), so a rerun changes nothing. ``sona ingest run`` seeds first and then
resolves the nine feeds onto the seeds (:func:`~sona.ingest.pipeline.load_resolver`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sona.catalog.schema import ContentItem, utcnow
from sona.catalog.store import SYSTEM, CatalogStore
from sona.data.sources.movielens import MovieLens
from sona.embeddings import kg_facts
from sona.genres import movielens_genres
from sona.ingest.quality import quality_score
from sona.search.documents import describe, documents_from_items, split_movielens_title

log = logging.getLogger(__name__)

ID_TYPE = "movielens"
"""``id_type`` of the entity mappings from a MovieLens item id to its catalog item."""
FOREIGN_KEY = "und"
RAW_KEY = "und-x-movielens"


def movielens_items(ml: MovieLens, *, now: datetime | None = None) -> list[ContentItem]:
    """One catalog item per ML-100K item, in catalog order (see module docstring)."""
    stamp = now or utcnow()
    frame = ml.catalog.frame
    facts = kg_facts(ml.catalog, ml.kg, ml.links)
    stats = ml.interactions.frame.groupby("item_id")["rating"].agg(["count", "mean"])
    top = max(float(np.log1p(stats["count"].max())), 1e-12) if len(stats) else 1.0
    items = []
    for row in frame.itertuples(index=False):
        title, alternates = split_movielens_title(row.title)
        raw = row.title.strip()
        alt = {RAW_KEY if a == raw else FOREIGN_KEY: a for a in alternates}
        genres = movielens_genres(row.genres)
        year = None if pd.isna(row.year) else int(row.year)
        count = int(stats["count"].get(row.item_id, 0))
        mean = stats["mean"].get(row.item_id)
        item = ContentItem(
            canonical_id=str(row.item_id), content_type="movie", title=title,
            alternate_titles=alt, release_year=year if year and year >= 1870 else None,
            genres=genres, overview=describe(np.nan if year is None else float(year), genres,
                                             facts.get(row.item_id, [])),
            average_rating=None if mean is None or pd.isna(mean) else float(mean) * 2.0,
            rating_count=count, popularity_score=float(np.log1p(count) / top),
            created_at=stamp, updated_at=stamp, last_updated=stamp)
        item.data_quality_score = round(quality_score(item, now=stamp).score, 6)
        items.append(item)
    return items


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What :func:`seed_catalog` did."""

    n_items: int  # seed items offered
    n_created: int  # of which were missing and written
    n_kept: int  # of which the catalog already had (left untouched)


def seed_catalog(store: CatalogStore, items: list[ContentItem]) -> SeedReport:
    """Write the seed ``items`` the catalog lacks, with their MovieLens id mappings.

    Idempotent: an item already present (seeded before, then enriched by feeds or edited
    through the admin API) is kept as it is, and a second run creates nothing.
    """
    have = {i.canonical_id for i in store.iter_items()}
    missing = [i for i in items if i.canonical_id not in have]
    if missing:
        store.put_many(missing, actor=SYSTEM)
    known = {(e, t) for e, t, _, _ in store.mappings() if t == ID_TYPE}
    new_maps = [(i.canonical_id, ID_TYPE, i.canonical_id, 1.0) for i in items
                if (i.canonical_id, ID_TYPE) not in known]
    store.upsert_mappings(new_maps)
    report = SeedReport(len(items), len(missing), len(items) - len(missing))
    log.info("MovieLens seed: %d items, %d created, %d already in %s", report.n_items,
             report.n_created, report.n_kept, store.url)
    return report


def catalog_documents(store: CatalogStore, dataset: str | Path | None = None) -> pd.DataFrame:
    """Search documents of every catalog item, what search indexes (served and evaluated).

    An empty catalog is first seeded from ``dataset``, the ML-100K folder (None: never).
    """
    if dataset is not None and store.count() == 0:
        from sona.data.sources import load_ml100k

        seed_catalog(store, movielens_items(load_ml100k(dataset)))
    return documents_from_items(store.iter_items())


__all__ = ["FOREIGN_KEY", "ID_TYPE", "RAW_KEY", "SeedReport", "catalog_documents",
           "movielens_items",
           "seed_catalog"]
