"""Apple TV+ / Apple TV app normaliser (premium subscription, store rent/buy, apple_original).

Raw shape (Apple media-API style): ``id``, ``type``, ``attributes {name,
description {standard}, releaseDate, durationInMillis, genreNames, contentRating
(lower-case, ``"pg13"``), isAppleOriginal, artwork {url with {w}x{h}}, backgroundArtwork
{url}, externalIds {eidr, imdb, tmdb}}``, ``offers [{kind: subscribe|rent|buy, price,
currencyCode, variant: HD|4K}]``, ``storefronts`` (lower-case country codes),
``availability {from, until}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images, VideoQuality
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

_KINDS = ("subscribe", "rent", "buy")
_SIZES = {"poster_small": (342, 513), "poster_medium": (780, 1170), "poster_large": (2000, 3000)}


class AppleTvPlusNormalizer(b.Normalizer):
    """Apple TV+ raw record -> canonical record."""

    platform = "apple_tv_plus"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        attrs = b.get(data, "attributes")
        labels = [str(g) for g in b.as_list(b.get(attrs, "genreNames", None), "genreNames")]
        original = bool(b.get(attrs, "isAppleOriginal", False))
        prices: dict[str, float] = {}
        currency = None
        qualities: set[VideoQuality] = set()
        for i, offer in enumerate(b.as_list(b.get(data, "offers", None), "offers")):
            kind = b.text(offer, "kind", required=True)
            if kind not in _KINDS:
                raise b.FieldError(f"offers.{i}.kind", f"expected one of {_KINDS}, got {kind!r}")
            qualities.add("UHD" if b.text(offer, "variant") == "4K" else "HD")
            if kind != "subscribe":
                price = b.number(offer, "price")
                if price is None:
                    raise b.FieldError(f"offers.{i}.price", f"{kind} offer without a price")
                prices[kind] = price
                currency = b.text(offer, "currencyCode") or currency
        subscription = any(o.get("kind") == "subscribe" for o in data.get("offers") or [])
        template = b.text(attrs, "artwork.url")
        posters = {k: template.replace("{w}", str(w)).replace("{h}", str(h))
                   for k, (w, h) in _SIZES.items()} if template else {}
        millis = b.number(attrs, "durationInMillis")
        return CanonicalRecord(
            platform_content_id=b.text(data, "id", required=True) or "",
            platform_id=self.platform, title=b.text(attrs, "name", required=True) or "",
            overview=b.text(attrs, "description.standard"),
            release_year=b.year_of(attrs, "releaseDate"),
            runtime_minutes=None if millis is None else round(millis / 60_000),
            genres=b.genres_from(labels + (["Apple Originals"] if original else [])),
            raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(attrs, "externalIds.eidr", None),
                                        imdb=b.get(attrs, "externalIds.imdb", None),
                                        tmdb=b.get(attrs, "externalIds.tmdb", None)),
            availability=OfferTerms(
                regions=[str(r).upper() for r in b.get(data, "storefronts", None) or []],
                subscription_required=subscription, rental_price=prices.get("rent"),
                purchase_price=prices.get("buy"), currency=currency,
                available_from=b.timestamp(data, "availability.from"),
                available_until=b.timestamp(data, "availability.until"),
                tier="premium" if subscription else None, video_qualities=sorted(qualities)),
            images=Images(**posters, backdrop=b.text(attrs, "backgroundArtwork.url")),
            rating=b.maturity(b.text(attrs, "contentRating")), is_original=original,
            updated_at=fetched_at)
