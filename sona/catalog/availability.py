"""Where to watch: the one place that decides which catalog offers are served.

An :class:`~sona.catalog.schema.Availability` offer is *live* at ``now`` when its window
holds it, ``available_from <= now < available_until`` (an open end is unbounded), and it
covers a region when the region is in its ``regions`` (an offer with no regions listed is
worldwide). Only live offers are ever served: an expired or future window never reaches a
result. :func:`live_offers` is that rule for one item; :class:`AvailabilityIndex` keeps every
catalog item's offers in memory, so a request answers "where to watch" and "which items are
watchable on these platforms" with no SQL: the index is loaded once from the
:class:`~sona.catalog.store.CatalogStore` and refreshed by the store's change listeners
(:meth:`AvailabilityIndex.attach`), so every catalog write and processed webhook shows up.
With several serving workers, a write another worker committed reaches these listeners
through :meth:`CatalogStore.notify <sona.catalog.store.CatalogStore.notify>`, called by that
server's catalog relay (:mod:`sona.serving.catalog_relay`): the same refresh, a few
milliseconds later, on the relay's thread.

Offers a feed or the admin API wrote without links get them from the platform's templates
(:mod:`sona.catalog.deeplinks`) and the item's ``external_ids.platform_ids``.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field

from sona.catalog.deeplinks import TEMPLATES, deep_links
from sona.catalog.schema import Availability, AvailabilityType, ContentItem, Platform
from sona.catalog.store import CatalogStore

log = logging.getLogger(__name__)

#: region used when a request names none
DEFAULT_REGION = "US"
#: where-to-watch answers kept per index version (:meth:`AvailabilityIndex.where_to_watch`)
_MAX_WATCH = 100_000
#: every platform an offer may name (the nine with feeds plus crave and bbc_iplayer)
KNOWN_PLATFORMS: tuple[str, ...] = get_args(Platform)


class WatchOffer(BaseModel):
    """One offer served with a result: where, how, until when and the links that open it."""

    model_config = ConfigDict(frozen=True)

    platform: str
    region: str  # the request's region (ISO 3166-1 alpha-2)
    availability_type: AvailabilityType  # subscription, rental, purchase or free
    price_cents: int | None = None  # rental/purchase price in minor units
    currency: str | None = None
    available_from: datetime | None = None  # window start (None: since ever)
    available_until: datetime | None = None  # window end, exclusive (None: open-ended)
    deep_link_url: str | None = None  # the platform's app link
    web_url: str | None = None  # the platform's web player


class WhereToWatch(BaseModel):
    """Live offers of one item in one region plus the catalog's data-quality score."""

    model_config = ConfigDict(frozen=True)

    region: str
    offers: list[WatchOffer] = Field(default_factory=list)
    data_quality_score: float  # ingestion quality in [0, 1]


@dataclass(frozen=True, slots=True)
class AvailabilityFilter:
    """What a request asks of availability; inactive (no constraint) unless it names
    platforms or ``available_now``.

    Active, it keeps the items with at least one live offer in ``region`` (on one of
    ``platforms`` when given). Future and expired offers never count, so a platform filter
    always means "watchable there now".
    """

    platforms: tuple[str, ...] = ()  # canonical platform names, any-of
    region: str = DEFAULT_REGION  # ISO 3166-1 alpha-2, upper case
    available_now: bool = False  # keep only items with a live offer

    def __post_init__(self) -> None:
        unknown = [p for p in self.platforms if p not in KNOWN_PLATFORMS]
        if unknown:
            raise ValueError(f"platforms: unknown platform(s) {unknown}; expected one of "
                             f"{list(KNOWN_PLATFORMS)}")
        if len(self.region) != 2 or not self.region.isascii() or not self.region.isupper():
            raise ValueError(f"region: expected an upper-case ISO 3166-1 alpha-2 code such as "
                             f"'US', got {self.region!r}")

    @property
    def active(self) -> bool:
        """Whether the filter constrains anything."""
        return bool(self.platforms) or self.available_now




def is_live(offer: Availability, now: datetime) -> bool:
    """Whether ``offer``'s window holds ``now``: ``from <= now < until`` (None: open end)."""
    if offer.available_from is not None and now < offer.available_from:
        return False
    return offer.available_until is None or now < offer.available_until


def covers(offer: Availability, region: str) -> bool:
    """Whether ``offer`` is sold in ``region`` (an offer listing no region is worldwide)."""
    return not offer.regions or region in offer.regions


def with_links(item: ContentItem) -> list[Availability]:
    """``item``'s offers, each missing link filled from the platform's templates.

    A link needs the platform's own content id (``external_ids.platform_ids``); an offer
    on a platform without one keeps its missing link (None).
    """
    out = []
    for offer in item.availability:
        pid = item.external_ids.platform_ids.get(offer.platform)
        if (offer.deep_link_url and offer.web_url) or not pid or offer.platform not in TEMPLATES:
            out.append(offer)
            continue
        links = deep_links(offer.platform, pid, item.title)
        out.append(offer.model_copy(update={
            "deep_link_url": offer.deep_link_url or links.mobile,
            "web_url": offer.web_url or links.web}))
    return out


def live_offers(offers: Iterable[Availability], region: str, now: datetime,
                platforms: Sequence[str] = ()) -> list[WatchOffer]:
    """The offers served for ``region`` at ``now`` (on ``platforms`` when given), in order."""
    return [WatchOffer(
        platform=o.platform, region=region, availability_type=o.availability_type,
        price_cents=o.price_cents, currency=o.currency, available_from=o.available_from,
        available_until=o.available_until, deep_link_url=o.deep_link_url, web_url=o.web_url)
        for o in offers if (not platforms or o.platform in platforms) and covers(o, region)
        and is_live(o, now)]


@dataclass(frozen=True, slots=True)
class _Entry:
    offers: tuple[Availability, ...]
    quality: float


@dataclass(slots=True)
class _Snapshot:
    """One immutable version of the index (swapped whole on change: readers take no lock)."""

    entries: dict[str, _Entry]
    boundaries: list[datetime]  # every window start/end, sorted
    version: int
    matches: dict[tuple[tuple[str, ...], str], tuple[int, frozenset[str]]] = field(
        default_factory=dict)  # (platforms, region) -> (boundary slot, matching ids)
    # (id, region, platforms) -> (boundary slot, where to watch), at most _MAX_WATCH entries
    watch: dict[tuple[str, str, tuple[str, ...]], tuple[int, WhereToWatch | None]] = field(
        default_factory=dict)


class AvailabilityIndex:
    """Every catalog item's offers in memory, keyed by canonical id (see module docstring).

    Args:
        items: the initial items (e.g. ``store.iter_items()``).
    """

    def __init__(self, items: Iterable[ContentItem] = ()) -> None:
        self._lock = threading.Lock()
        self._snap = _Snapshot({}, [], 0)
        self.upsert(items)

    @classmethod
    def from_store(cls, store: CatalogStore) -> AvailabilityIndex:
        """An index of every item in ``store``, kept current by its change listener."""
        index = cls(store.iter_items())
        index.attach(store)
        log.info("availability index: %d items from %s", len(index), store.url)
        return index

    def attach(self, store: CatalogStore) -> None:
        """Follow ``store``: each changed id is re-read (one query per write, none per read)."""
        store.listeners.append(lambda ids: self.refresh(store, ids))

    def refresh(self, store: CatalogStore, ids: Sequence[str]) -> None:
        """Re-read ``ids`` from ``store``: present ones are upserted, deleted ones dropped."""
        found = [store.find(i) for i in ids]
        self.upsert(i for i in found if i is not None)
        self.remove([i for i, f in zip(ids, found, strict=True) if f is None])

    def upsert(self, items: Iterable[ContentItem]) -> None:
        """Add or replace items (links filled, see :func:`with_links`)."""
        fresh = {i.canonical_id: _Entry(tuple(with_links(i)), i.data_quality_score)
                 for i in items}
        if fresh:
            self._swap(lambda entries: entries.update(fresh))

    def remove(self, ids: Iterable[str]) -> None:
        """Forget items (unknown ids are ignored)."""
        gone = [str(i) for i in ids]

        def drop(entries: dict[str, _Entry]) -> None:
            for i in gone:
                entries.pop(i, None)
        if gone:
            self._swap(drop)

    def _swap(self, change: Callable[[dict[str, _Entry]], None]) -> None:
        with self._lock:
            entries = dict(self._snap.entries)
            change(entries)
            stamps = {t for e in entries.values() for o in e.offers
                      for t in (o.available_from, o.available_until) if t is not None}
            self._snap = _Snapshot(entries, sorted(stamps), self._snap.version + 1)

    def __len__(self) -> int:
        return len(self._snap.entries)

    def __contains__(self, content_id: object) -> bool:
        return str(content_id) in self._snap.entries

    def where_to_watch(self, content_id: object, region: str, now: datetime,
                       platforms: Sequence[str] = ()) -> WhereToWatch | None:
        """Live offers of ``content_id`` in ``region`` at ``now``; None for an item the
        catalog does not hold.

        Like :meth:`matching_ids`, the answer only changes at a window boundary or a
        catalog change, so it is built once per (item, region, platforms) between two
        boundaries and shared (a frozen model): every recommended or found item asked for
        it on every request (issue 12).
        """
        snap = self._snap
        slot = bisect.bisect_right(snap.boundaries, now)
        key = (str(content_id), region, tuple(platforms))
        cached = snap.watch.get(key)
        if cached is not None and cached[0] == slot:
            return cached[1]
        entry = snap.entries.get(key[0])
        found = None if entry is None else WhereToWatch(
            region=region, offers=live_offers(entry.offers, region, now, platforms),
            data_quality_score=entry.quality)
        if len(snap.watch) >= _MAX_WATCH:
            snap.watch.clear()
        snap.watch[key] = (slot, found)
        return found

    def matching_ids(self, flt: AvailabilityFilter, now: datetime) -> frozenset[str]:
        """Ids of the items passing an active ``flt`` at ``now``.

        The set only changes at a window boundary or a catalog change, so it is computed
        once per (platforms, region) between two boundaries and reused.
        """
        snap = self._snap
        slot = bisect.bisect_right(snap.boundaries, now)
        key = (tuple(sorted(flt.platforms)), flt.region)
        cached = snap.matches.get(key)
        if cached is not None and cached[0] == slot:
            return cached[1]
        wanted = set(flt.platforms)
        ids = frozenset(cid for cid, e in snap.entries.items() if any(
            (not wanted or o.platform in wanted) and covers(o, flt.region) and is_live(o, now)
            for o in e.offers))
        snap.matches[key] = (slot, ids)
        return ids


__all__ = [
    "DEFAULT_REGION", "KNOWN_PLATFORMS", "AvailabilityFilter", "AvailabilityIndex", "WatchOffer",
    "WhereToWatch", "covers", "is_live", "live_offers", "with_links",
]
