"""Peacock normaliser (free / premium / premium-plus tiers, peacock_original).

Raw shape: ``id``, ``type``, ``attributes {title, synopsisLong, year, durationSeconds,
genres [{title}], classification [rating], peacockOriginal, tier ("Free", "Premium",
"Premium Plus"), videoFormats}``, ``identifiers {eidr, imdb, tmdb}``, ``images [{type:
titleArt34|landscape, url}]``, ``territories``, ``offerWindow {startTime, endTime}``
(epoch milliseconds). Free-tier titles need no subscription.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

TIERS = {"free": "free", "premium": "premium", "premium plus": "premium_plus"}


class PeacockNormalizer(b.Normalizer):
    """Peacock raw record -> canonical record."""

    platform = "peacock"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        attrs = b.get(data, "attributes")
        labels = [b.text(g, "title", required=True) or ""
                  for g in b.as_list(b.get(attrs, "genres", None), "attributes.genres")]
        raw_tier = (b.text(attrs, "tier") or "Premium").lower().replace("-", " ")
        if raw_tier not in TIERS:
            raise b.FieldError("attributes.tier",
                               f"expected one of {list(TIERS)}, got {raw_tier!r}")
        tier = TIERS[raw_tier]
        original = bool(b.get(attrs, "peacockOriginal", False))
        kinds = {img.get("type"): img.get("url")
                 for img in b.as_list(b.get(data, "images", None), "images")}
        ratings = b.as_list(b.get(attrs, "classification", None), "attributes.classification")
        return CanonicalRecord(
            platform_content_id=b.text(data, "id", required=True) or "",
            platform_id=self.platform, title=b.text(attrs, "title", required=True) or "",
            overview=b.text(attrs, "synopsisLong"), release_year=b.year_of(attrs, "year"),
            runtime_minutes=b.minutes_from_seconds(b.number(attrs, "durationSeconds")),
            genres=b.genres_from(labels + (["Peacock Originals"] if original else [])),
            raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "identifiers.eidr", None),
                                        imdb=b.get(data, "identifiers.imdb", None),
                                        tmdb=b.get(data, "identifiers.tmdb", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "territories", None) or []),
                subscription_required=tier != "free",
                available_from=b.timestamp(data, "offerWindow.startTime"),
                available_until=b.timestamp(data, "offerWindow.endTime"), tier=tier,
                video_qualities=list(b.get(attrs, "videoFormats", None) or [])),
            images=Images(poster_medium=kinds.get("titleArt34"), backdrop=kinds.get("landscape")),
            rating=b.maturity(str(ratings[0])) if ratings else None, is_original=original,
            updated_at=fetched_at)
