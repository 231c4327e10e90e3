"""Prime Video catalog-feed normaliser (subscription / rental / purchase offers).

Raw shape: ``asin``, ``titleText``, ``synopsis``, ``releaseDate`` (ISO date),
``runtimeMinutes``, ``genreLabels`` (one comma-separated string), ``ageRating``
(``ALL``/``7+``/``13+``/``16+``/``18+``/``NR``), ``identifiers {eidr, imdbId, tmdbId}``
(IMDb sometimes without ``tt``), ``customerReviews {averageStars (0-5), count}``,
``offers [{offerType: SUBSCRIPTION|TVOD_RENTAL|TVOD_PURCHASE, price {amount, currencyCode},
quality}]``, ``territories``, ``window {start, end}``, ``images {packshot, hero}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sona.catalog.schema import Images, VideoQuality
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

_AGE = {"ALL": "G", "7+": "PG", "13+": "PG13", "16+": "R", "18+": "NC17", "NR": "NR"}
_KINDS = ("SUBSCRIPTION", "TVOD_RENTAL", "TVOD_PURCHASE")


class PrimeVideoNormalizer(b.Normalizer):
    """Prime Video raw record -> canonical record."""

    platform = "prime_video"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        labels = [g.strip() for g in (b.text(data, "genreLabels") or "").split(",") if g.strip()]
        rental = purchase = None
        currency = None
        subscription = False
        qualities: set[str] = set()
        for i, offer in enumerate(b.as_list(b.get(data, "offers", None), "offers")):
            kind = b.text(offer, "offerType", required=True)
            if kind not in _KINDS:
                raise b.FieldError(f"offers.{i}.offerType",
                                   f"expected one of {_KINDS}, got {kind!r}")
            qualities.add(b.text(offer, "quality") or "HD")
            if kind == "SUBSCRIPTION":
                subscription = True
                continue
            amount = b.number(offer, "price.amount")
            if amount is None:
                raise b.FieldError(f"offers.{i}.price.amount", f"{kind} offer without a price")
            currency = b.text(offer, "price.currencyCode") or currency
            if kind == "TVOD_RENTAL":
                rental = amount
            else:
                purchase = amount
        age = b.text(data, "ageRating")
        if age is not None and age not in _AGE:
            raise b.FieldError("ageRating", f"expected one of {list(_AGE)}, got {age!r}")
        stars = b.number(data, "customerReviews.averageStars")
        images = b.get(data, "images", None) or {}
        return CanonicalRecord(
            platform_content_id=b.text(data, "asin", required=True) or "",
            platform_id=self.platform, title=b.text(data, "titleText", required=True) or "",
            overview=b.text(data, "synopsis"), release_year=b.year_of(data, "releaseDate"),
            runtime_minutes=b.integer(data, "runtimeMinutes"),
            genres=b.genres_from(labels), raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "identifiers.eidr", None),
                                        imdb=b.get(data, "identifiers.imdbId", None),
                                        tmdb=b.get(data, "identifiers.tmdbId", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "territories", None) or []),
                subscription_required=subscription, rental_price=rental,
                purchase_price=purchase, currency=currency,
                available_from=b.timestamp(data, "window.start"),
                available_until=b.timestamp(data, "window.end"),
                tier="prime" if subscription else None,
                video_qualities=[cast(VideoQuality, q) for q in sorted(qualities)
                                 if q in ("SD", "HD", "UHD", "HDR")],
                subtitle_languages=list(b.get(data, "subtitleLanguages", None) or [])),
            images=Images(poster_large=images.get("packshot"), backdrop=images.get("hero")),
            rating=None if age is None else b.maturity(_AGE[age]),
            user_rating=None if stars is None else min(10.0, 2 * stars),
            updated_at=fetched_at)
