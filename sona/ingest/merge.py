"""Fold the canonical records of one entity into a catalog :class:`ContentItem`.

Several platforms describe the same work with small disagreements (a year off by one, a
dropped genre, an upper-cased title, a conflicting IMDb id). Scalars are decided by vote,
ties broken by a platform trust order; lists (genres, offers) are unions; images are taken
from the most trusted platform that has them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sona.catalog.schema import ContentItem, ExternalIds, Images
from sona.genres import GENRES
from sona.ingest.quality import quality_score
from sona.ingest.records import CanonicalRecord
from sona.ingest.titles import display_title

T = TypeVar("T")

TRUST: tuple[str, ...] = ("apple_tv_plus", "disney_plus", "hbo_max", "netflix", "prime_video",
                          "paramount_plus", "peacock", "hulu", "youtube")
"""Platform order used to break ties (curated studio deliveries first, YouTube last)."""


def _rank(record: CanonicalRecord) -> int:
    return TRUST.index(record.platform_id) if record.platform_id in TRUST else len(TRUST)


def _vote(records: Sequence[CanonicalRecord],
          get: Callable[[CanonicalRecord], T | None]) -> T | None:
    """Most frequent non-null value; ties go to the most trusted platform's value."""
    values = [(get(r), _rank(r)) for r in records]
    counts = Counter(v for v, _ in values if v is not None)
    if not counts:
        return None
    best = max(counts.values())
    return min(((v, rank) for v, rank in values if v is not None and counts[v] == best),
               key=lambda t: t[1])[0]


def _external(id_type: str) -> Callable[[CanonicalRecord], str | None]:
    return lambda r: r.external_ids.get(id_type)


def _title(records: Sequence[CanonicalRecord]) -> str:
    titles = [display_title(r.title) or r.title for r in records]
    proper = [r for r, t in zip(records, titles, strict=True) if not t.isupper()] or list(records)
    return _vote(proper, lambda r: display_title(r.title) or r.title) or titles[0]


def item_from_records(entity_id: str, records: Sequence[CanonicalRecord], *, now: datetime,
                      created_at: datetime | None = None) -> ContentItem:
    """The catalog item of ``entity_id`` built from all its ``records``.

    Raises:
        ValueError: no records.
    """
    if not records:
        raise ValueError(f"entity {entity_id} has no records to merge")
    ordered = sorted(records, key=_rank)
    ext = {t: _vote(ordered, _external(t)) for t in ("eidr_id", "imdb_id", "tmdb_id")}
    platform_ids: dict[str, str] = {}
    for r in ordered:
        platform_ids.setdefault(r.platform_id, r.platform_content_id)
    image_fields = Images.model_fields
    images = {f: next((getattr(r.images, f) for r in ordered if getattr(r.images, f)), None)
              for f in image_fields}
    genres = {g for r in records for g in r.genres}
    ratings = [r.user_rating for r in records if r.user_rating is not None]
    runtimes = [r.runtime_minutes for r in records if r.runtime_minutes is not None]
    overviews = [r.overview for r in ordered if r.overview]
    pops = [r.popularity for r in records if r.popularity is not None]
    item = ContentItem(
        canonical_id=entity_id, content_type=_vote(ordered, lambda r: r.content_type) or "movie",
        title=_title(ordered), overview=max(overviews, key=len) if overviews else None,
        release_year=_vote(ordered, lambda r: r.release_year),
        runtime_minutes=round(statistics.median(runtimes)) if runtimes else None,
        genres=[g for g in GENRES if g in genres],
        maturity_rating=_vote(ordered, lambda r: r.rating),
        external_ids=ExternalIds(**ext, platform_ids=platform_ids), images=Images(**images),
        availability=[o for r in ordered for o in r.offers()],
        average_rating=round(statistics.fmean(ratings), 3) if ratings else None,
        rating_count=len(ratings) or None, popularity_score=max(pops) if pops else 0.0,
        source_platforms=sorted({r.platform_id for r in records}, key=TRUST.index),
        created_at=created_at or now, updated_at=now, last_updated=now)
    return _scored(item, now)


def apply_record(item: ContentItem, record: CanonicalRecord, *, now: datetime) -> ContentItem:
    """``item`` updated with one platform record (a webhook add/update).

    The record's platform offers replace that platform's previous offers; fields the item
    lacks are filled from the record; genres are united. Title and year stay (they were
    decided by the vote of all platforms).
    """
    data: dict[str, Any] = item.model_dump()
    platform = record.platform_id
    data["availability"] = [a for a in item.availability if a.platform != platform] + [
        o.model_dump() for o in record.offers()]
    ext = dict(data["external_ids"])
    for key, value in record.external_ids.items():
        ext[key] = ext.get(key) or value
    ext["platform_ids"] = {**ext["platform_ids"], platform: record.platform_content_id}
    data["external_ids"] = ext
    for name, value in record.images.model_dump().items():
        data["images"][name] = data["images"][name] or value
    genres = set(item.genres) | set(record.genres)
    data["genres"] = [g for g in GENRES if g in genres]
    data["overview"] = item.overview or record.overview
    data["runtime_minutes"] = item.runtime_minutes or record.runtime_minutes
    data["release_year"] = item.release_year or record.release_year
    data["maturity_rating"] = item.maturity_rating or record.rating
    if record.user_rating is not None and item.average_rating is None:
        data["average_rating"] = record.user_rating
    data["source_platforms"] = sorted(set(item.source_platforms) | {platform},
                                      key=lambda p: TRUST.index(p) if p in TRUST else len(TRUST))
    data |= {"updated_at": now, "last_updated": now}
    return _scored(ContentItem.model_validate(data), now)


def merge_items(survivor: ContentItem, absorbed: ContentItem, *, now: datetime) -> ContentItem:
    """``survivor`` after later evidence showed ``absorbed`` is the same work (issue 14).

    Offers, platform ids and genres are united; fields the survivor lacks are filled from
    ``absorbed``; title and year stay the survivor's.
    """
    data: dict[str, Any] = survivor.model_dump()
    keep = {(a.platform, a.availability_type) for a in survivor.availability}
    data["availability"] += [a.model_dump() for a in absorbed.availability
                             if (a.platform, a.availability_type) not in keep]
    ext, other = data["external_ids"], absorbed.external_ids.model_dump()
    for key, value in other.items():
        if key == "platform_ids":
            ext[key] = {**value, **ext[key]}
        else:
            ext[key] = ext.get(key) or value
    genres = set(survivor.genres) | set(absorbed.genres)
    data["genres"] = [g for g in GENRES if g in genres]
    for name in ("overview", "runtime_minutes", "release_year", "maturity_rating",
                 "average_rating", "original_title"):
        data[name] = data.get(name) or getattr(absorbed, name, None)
    data["alternate_titles"] = {**absorbed.alternate_titles, **survivor.alternate_titles}
    data["source_platforms"] = sorted(
        set(survivor.source_platforms) | set(absorbed.source_platforms),
        key=lambda p: TRUST.index(p) if p in TRUST else len(TRUST))
    data["popularity_score"] = max(survivor.popularity_score, absorbed.popularity_score)
    data |= {"updated_at": now, "last_updated": now}
    return _scored(ContentItem.model_validate(data), now)


def remove_platform(item: ContentItem, platform: str, *, now: datetime) -> ContentItem | None:
    """``item`` without ``platform``'s offers, or ``None`` when no platform offers it any more."""
    remaining = [a for a in item.availability if a.platform != platform]
    sources = [p for p in item.source_platforms if p != platform]
    if not sources:
        return None
    ext = item.external_ids.model_copy(update={"platform_ids": {
        p: i for p, i in item.external_ids.platform_ids.items() if p != platform}})
    updated = item.model_copy(update={"availability": remaining, "source_platforms": sources,
                                      "external_ids": ext, "updated_at": now, "last_updated": now})
    return _scored(ContentItem.model_validate(updated.model_dump()), now)


def _scored(item: ContentItem, now: datetime) -> ContentItem:
    item.data_quality_score = round(quality_score(item, now=now).score, 6)
    return item


__all__ = ["TRUST", "apply_record", "item_from_records", "merge_items", "remove_platform"]
