"""Where-to-watch rules and the in-memory availability index (issue 11, item 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sona.catalog import Availability, CatalogStore, ContentItem, ExternalIds
from sona.catalog.availability import (
    AvailabilityFilter,
    AvailabilityIndex,
    is_live,
    live_offers,
    with_links,
)
from sona.db import sqlite_url

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
IDS = ["00000000-0000-4000-8000-00000000000" + str(i) for i in range(4)]


def offer(platform: str = "netflix", *, start: datetime | None = None,
          end: datetime | None = None, regions: tuple[str, ...] = ("US",),
          kind: str = "subscription", **extra: object) -> Availability:
    return Availability.model_validate({
        "platform": platform, "availability_type": kind, "regions": list(regions),
        "available_from": start, "available_until": end, **extra})


def item(cid: str, *offers: Availability, quality: float = 0.5, **ids: str) -> ContentItem:
    return ContentItem(canonical_id=cid, title="Amélie", availability=list(offers),
                       data_quality_score=quality, external_ids=ExternalIds(platform_ids=ids))


def test_window_start_inclusive_end_exclusive() -> None:
    o = offer(start=NOW, end=NOW + DAY)
    assert is_live(o, NOW) and is_live(o, NOW + DAY - timedelta(microseconds=1))
    assert not is_live(o, NOW - timedelta(seconds=1)) and not is_live(o, NOW + DAY)
    assert is_live(offer(), NOW)  # open window


def test_expired_and_future_offers_are_never_served() -> None:
    offers = [offer("netflix", end=NOW - DAY), offer("hulu", start=NOW + DAY),
              offer("peacock", start=NOW - DAY, end=NOW + DAY)]
    assert [o.platform for o in live_offers(offers, "US", NOW)] == ["peacock"]


def test_region_and_platform_selection() -> None:
    offers = [offer("netflix", regions=("GB",)), offer("hulu", regions=()),
              offer("youtube", regions=("US", "GB"), kind="rental", price_cents=399,
                    currency="USD")]
    assert [o.platform for o in live_offers(offers, "US", NOW)] == ["hulu", "youtube"]
    gb = live_offers(offers, "GB", NOW, platforms=["youtube"])
    assert [(o.platform, o.region, o.price_cents) for o in gb] == [("youtube", "GB", 399)]


def test_missing_links_come_from_the_platform_templates() -> None:
    it = item(IDS[0], offer("apple_tv_plus"), offer("netflix", deep_link_url="nflx://x",
                                                    web_url="https://n/x"),
              offer("hulu"), apple_tv_plus="umc.cmc.7")
    filled = {o.platform: o for o in with_links(it)}
    assert filled["apple_tv_plus"].web_url == "https://tv.apple.com/movie/amelie/umc.cmc.7"
    assert filled["apple_tv_plus"].deep_link_url == "com.apple.tv://tv.apple.com/movie/umc.cmc.7"
    assert filled["netflix"].deep_link_url == "nflx://x"  # a feed's own link is kept
    assert filled["hulu"].deep_link_url is None  # no hulu id: nothing to build from


def test_filter_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="platforms: unknown platform"):
        AvailabilityFilter(platforms=("netflux",))
    with pytest.raises(ValueError, match="region"):
        AvailabilityFilter(region="usa")
    assert not AvailabilityFilter().active and AvailabilityFilter(available_now=True).active


def test_index_answers_where_to_watch_and_matching_ids() -> None:
    index = AvailabilityIndex([
        item(IDS[0], offer("netflix"), quality=0.9, netflix="81"),
        item(IDS[1], offer("hulu", end=NOW - DAY)),  # expired
        item(IDS[2], offer("netflix", start=NOW + DAY)),  # not yet
        item(IDS[3])])
    w = index.where_to_watch(IDS[0], "US", NOW)
    assert w is not None and w.data_quality_score == 0.9
    assert [o.deep_link_url for o in w.offers] == ["nflx://www.netflix.com/title/81"]
    assert index.where_to_watch(IDS[1], "US", NOW).offers == []  # type: ignore[union-attr]
    assert index.where_to_watch("unknown", "US", NOW) is None
    assert index.matching_ids(AvailabilityFilter(available_now=True), NOW) == {IDS[0]}
    assert index.matching_ids(AvailabilityFilter(platforms=("hulu",)), NOW) == frozenset()
    # the cached answer moves with the clock: item 2 opens tomorrow, item 0 stays
    later = index.matching_ids(AvailabilityFilter(platforms=("netflix",)), NOW + 2 * DAY)
    assert later == {IDS[0], IDS[2]}
    assert index.matching_ids(AvailabilityFilter(platforms=("netflix",)), NOW) == {IDS[0]}


def test_where_to_watch_is_reused_between_window_boundaries() -> None:
    # issue 12: built once per (item, region, platforms) between two boundaries, then shared
    index = AvailabilityIndex([item(IDS[0], offer("netflix", end=NOW + DAY), netflix="81"),
                               item(IDS[2], offer("netflix", start=NOW + DAY))])
    first = index.where_to_watch(IDS[0], "US", NOW)
    assert index.where_to_watch(IDS[0], "US", NOW + timedelta(hours=1)) is first
    assert index.where_to_watch(IDS[0], "US", NOW, ("hulu",)) != first  # another key
    assert index.where_to_watch(IDS[0], "US", NOW + DAY).offers == []  # type: ignore[union-attr]
    assert len(index.where_to_watch(IDS[2], "US", NOW + DAY).offers) == 1  # type: ignore[union-attr]
    assert index.where_to_watch(IDS[2], "US", NOW).offers == []  # type: ignore[union-attr]
    index.upsert([item(IDS[0], offer("hulu"), quality=0.1)])  # a catalog change: rebuilt
    changed = index.where_to_watch(IDS[0], "US", NOW)
    assert changed is not None and changed.data_quality_score == 0.1
    assert [o.platform for o in changed.offers] == ["hulu"]


def test_index_follows_catalog_writes(tmp_path: Path) -> None:
    store = CatalogStore(sqlite_url(tmp_path / "catalog.db"))
    store.put(item(IDS[0], offer("netflix")))
    index = AvailabilityIndex.from_store(store)
    flt = AvailabilityFilter(platforms=("hulu",))
    assert index.matching_ids(flt, NOW) == frozenset()
    store.set_availability(IDS[0], "hulu", [offer("hulu")])
    assert index.matching_ids(flt, NOW) == {IDS[0]}  # no restart, no re-read per request
    store.put(item(IDS[1], offer("hulu", end=NOW - DAY)))
    assert IDS[1] in index and index.matching_ids(flt, NOW) == {IDS[0]}
    store.set_quality_scores({IDS[0]: 0.25})
    assert index.where_to_watch(IDS[0], "US", NOW).data_quality_score == 0.25  # type: ignore[union-attr]
    store.delete(IDS[0])
    assert IDS[0] not in index and index.matching_ids(flt, NOW) == frozenset()


def test_a_failing_listener_does_not_fail_the_write(tmp_path: Path) -> None:
    store = CatalogStore(sqlite_url(tmp_path / "catalog.db"))
    seen: list[list[str]] = []

    def broken(ids: list[str]) -> None:
        raise RuntimeError("view is broken")
    store.listeners.extend([broken, seen.append])
    store.put(item(IDS[0]))
    assert store.find(IDS[0]) is not None and seen == [[IDS[0]]]
