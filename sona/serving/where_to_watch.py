"""Served "where to watch": request filters -> allowed items, and offers on each result.

The rules (live windows, regions, links) live in :mod:`sona.catalog.availability`; this
module is the serving glue the recommendation, similar-items and search handlers share:

- :func:`availability_filter` turns a request's ``platforms``/``region``/``available_now``
  into an :class:`~sona.catalog.availability.AvailabilityFilter`, or a 400 naming the field;
- :meth:`WhereToWatchService.allowed` gives the model item indices an active filter allows,
  passed to :meth:`Pipeline.rank` as ``candidates`` (the ranking offline evaluation uses,
  so a filtered list is still ``limit`` long);
- :meth:`WhereToWatchService.lookup` gives a result's live offers.

Everything reads the in-memory :class:`~sona.catalog.availability.AvailabilityIndex`: no
SQL on the request path. Index arrays are cached per (model item index, matching id set),
so a repeated filter costs a dictionary lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from sona.catalog.availability import (
    DEFAULT_REGION,
    AvailabilityFilter,
    AvailabilityIndex,
    WhereToWatch,
)
from sona.catalog.schema import utcnow
from sona.data.ids import IdIndex
from sona.search.filters import canonical_platform
from sona.serving.errors import ApiError
from sona.types import IndexArray

_CACHE_SIZE = 64  # distinct (model, filter result) index arrays kept


def availability_filter(platforms: Sequence[str] = (), region: str | None = None,
                        available_now: bool = False, *, prefix: str = "") -> AvailabilityFilter:
    """A request's availability filter (platform labels canonicalised: ``"Disney+"`` ok).

    Args:
        platforms, region, available_now: the request's fields (region default ``"US"``).
        prefix: where the fields sit in the request body (``"filters."`` for search).

    Raises:
        ApiError: 400 ``invalid_filter`` naming the field of an unknown platform or a
            malformed region.
    """
    canonical = []
    for label in platforms:
        try:
            canonical.append(canonical_platform(label))
        except ValueError as exc:
            raise ApiError(400, "invalid_filter", f"{prefix}platforms: {exc}",
                           field=f"{prefix}platforms") from exc
    code = DEFAULT_REGION if region is None else region.strip().upper()
    try:
        return AvailabilityFilter(platforms=tuple(dict.fromkeys(canonical)), region=code,
                                  available_now=available_now)
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"{prefix}{exc}", field=f"{prefix}region") from exc


class WhereToWatchService:
    """Availability lookups of the serving process (see module docstring).

    Args:
        index: the catalog's offers in memory (kept current by the catalog store).
        clock: current UTC time (tests pin it).
    """

    def __init__(self, index: AvailabilityIndex,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.index = index
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int], tuple[IdIndex, frozenset[str], IndexArray]] = {}

    def allowed(self, items: IdIndex, flt: AvailabilityFilter,
                now: datetime) -> IndexArray | None:
        """Indices into ``items`` of the items ``flt`` allows; None when it is inactive.

        Catalog items the model does not know are skipped (they cannot be ranked); the
        catalog's string ids match an integer-keyed model (MovieLens ``"50"`` is item 50).
        """
        if not flt.active:
            return None
        ids = self.index.matching_ids(flt, now)
        key = (id(items), id(ids))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is items and hit[1] is ids:
            return hit[2]
        numbers = items.numbers(sorted(ids), missing="negative") if ids else \
            np.empty(0, np.int64)
        allowed = np.sort(numbers[numbers >= 0]).astype(np.int64)
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (items, ids, allowed)
        return allowed

    def lookup(self, content_id: object, flt: AvailabilityFilter,
               now: datetime) -> WhereToWatch | None:
        """Live offers of one result in the filter's region (on its platforms when given);
        None for an item the catalog does not hold."""
        return self.index.where_to_watch(content_id, flt.region, now, flt.platforms)


__all__ = ["WhereToWatchService", "availability_filter"]
