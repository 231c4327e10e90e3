"""YouTube (Movies & TV) normaliser (free / rental / purchase offers).

Raw shape (Data API ``youtube#video`` plus an ``offers`` block): ``id``, ``snippet {title
("Title (1995) | Full Movie"), description, publishedAt (upload time, not the release
year), tags, thumbnails {default, medium, high, maxres}, categoryId}``, ``contentDetails
{duration (ISO-8601), regionRestriction {allowed}, definition}``, ``statistics
{viewCount}``, ``offers [{type: free|rent|buy, priceMicros, currency}]``, ``externalIds
{imdb}``. The release year comes from the title; the title loses its decorations.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms
from sona.ingest.titles import strip_decorations, title_year

_KINDS = ("free", "rent", "buy")


class YoutubeNormalizer(b.Normalizer):
    """YouTube raw record -> canonical record."""

    platform = "youtube"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        raw_title = b.text(data, "snippet.title", required=True) or ""
        tags = [str(t) for t in b.as_list(b.get(data, "snippet.tags", None), "snippet.tags")]
        prices: dict[str, float] = {}
        currency = None
        for i, offer in enumerate(b.as_list(b.get(data, "offers", None), "offers")):
            kind = b.text(offer, "type", required=True)
            if kind not in _KINDS:
                raise b.FieldError(f"offers.{i}.type", f"expected one of {_KINDS}, got {kind!r}")
            if kind != "free":
                micros = b.integer(offer, "priceMicros")
                if micros is None:
                    raise b.FieldError(f"offers.{i}.priceMicros", f"{kind} offer without a price")
                prices[kind] = micros / 1_000_000
                currency = b.text(offer, "currency") or currency
        views = b.integer(data, "statistics.viewCount")
        thumbs = b.get(data, "snippet.thumbnails", None) or {}
        definition = b.text(data, "contentDetails.definition") or "sd"
        return CanonicalRecord(
            platform_content_id=b.text(data, "id", required=True) or "",
            platform_id=self.platform, title=strip_decorations(raw_title) or raw_title,
            overview=b.text(data, "snippet.description"), release_year=title_year(raw_title),
            runtime_minutes=b.iso_duration_minutes(data, "contentDetails.duration"),
            genres=b.genres_from(tags), raw_genres=tags,
            external_ids=b.external_ids(imdb=b.get(data, "externalIds.imdb", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "contentDetails.regionRestriction.allowed", None) or []),
                rental_price=prices.get("rent"), purchase_price=prices.get("buy"),
                currency=currency, available_from=b.timestamp(data, "snippet.publishedAt"),
                video_qualities=["HD"] if definition == "hd" else ["SD"]),
            images=Images(poster_small=(thumbs.get("default") or {}).get("url"),
                          poster_medium=(thumbs.get("medium") or {}).get("url"),
                          poster_large=(thumbs.get("high") or {}).get("url"),
                          backdrop=(thumbs.get("maxres") or {}).get("url")),
            popularity=None if not views else min(1.0, math.log10(views) / 8),
            updated_at=fetched_at)
