"""Max (HBO Max) normaliser (ad-supported / ad-free tiers, max_original flag).

Raw shape: ``urn``, ``titles {full, short}``, ``summaries {full}``, ``releaseYear``,
``runtimeSeconds``, ``genres``, ``ratingCode``, ``availableTiers`` (``AD_SUPPORTED``,
``AD_FREE``), ``maxOriginal``, ``references {imdb, eidr, tmdb}``, ``images [{role:
poster|background, url}]``, ``territories``, ``window {start, end}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

TIERS = ("ad_supported", "ad_free")


class HboMaxNormalizer(b.Normalizer):
    """Max raw record -> canonical record; ``tier`` is the cheapest plan with the title."""

    platform = "hbo_max"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        labels = [str(g) for g in b.as_list(b.get(data, "genres", None), "genres")]
        tiers = [str(t).lower() for t in b.as_list(b.get(data, "availableTiers", None),
                                                   "availableTiers")]
        unknown = [t for t in tiers if t not in TIERS]
        if unknown:
            raise b.FieldError("availableTiers", f"unknown tier(s) {unknown}")
        original = bool(b.get(data, "maxOriginal", False))
        roles = {img.get("role"): img.get("url")
                 for img in b.as_list(b.get(data, "images", None), "images")}
        return CanonicalRecord(
            platform_content_id=b.text(data, "urn", required=True) or "",
            platform_id=self.platform, title=b.text(data, "titles.full", required=True) or "",
            overview=b.text(data, "summaries.full"), release_year=b.year_of(data, "releaseYear"),
            runtime_minutes=b.minutes_from_seconds(b.number(data, "runtimeSeconds")),
            genres=b.genres_from(labels + (["Max Originals"] if original else [])),
            raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "references.eidr", None),
                                        imdb=b.get(data, "references.imdb", None),
                                        tmdb=b.get(data, "references.tmdb", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "territories", None) or []), subscription_required=True,
                available_from=b.timestamp(data, "window.start"),
                available_until=b.timestamp(data, "window.end"),
                tier=min(tiers, key=TIERS.index) if tiers else None),
            images=Images(poster_large=roles.get("poster"), backdrop=roles.get("background")),
            rating=b.maturity(b.text(data, "ratingCode")), is_original=original,
            updated_at=fetched_at)
