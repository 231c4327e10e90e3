"""Hulu partner-feed normaliser (ad-supported / ad-free / live-tv tiers, hulu_original).

Raw shape: ``id``, ``type``, ``name``, ``description``, ``premiere_date`` (ISO datetime),
``duration_sec``, ``genre_names``, ``rating {code}``, ``tiers`` (``ad-supported``,
``ad-free``, ``live-tv``: the plans that include the title), ``hulu_original``,
``external_ids {eidr_id, imdb_id}`` (IMDb sometimes bare digits),
``artwork {"program.tile" {path}, "detail.horizontal.hero" {path}}``,
``availability {start_date, end_date, locations}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

TIERS = ("ad_supported", "ad_free", "live_tv")  # cheapest first


class HuluNormalizer(b.Normalizer):
    """Hulu raw record -> canonical record; ``tier`` is the cheapest plan with the title."""

    platform = "hulu"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        labels = [str(g) for g in b.as_list(b.get(data, "genre_names", None), "genre_names")]
        tiers = [str(t).replace("-", "_") for t in b.as_list(b.get(data, "tiers", None), "tiers")]
        unknown = [t for t in tiers if t not in TIERS]
        if unknown:
            raise b.FieldError("tiers", f"unknown tier(s) {unknown}; expected {list(TIERS)}")
        original = bool(b.get(data, "hulu_original", False))
        art = b.get(data, "artwork", None) or {}
        return CanonicalRecord(
            platform_content_id=b.text(data, "id", required=True) or "",
            platform_id=self.platform, title=b.text(data, "name", required=True) or "",
            overview=b.text(data, "description"), release_year=b.year_of(data, "premiere_date"),
            runtime_minutes=b.minutes_from_seconds(b.number(data, "duration_sec")),
            genres=b.genres_from(labels + (["Hulu Originals"] if original else [])),
            raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "external_ids.eidr_id", None),
                                        imdb=b.get(data, "external_ids.imdb_id", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "availability.locations", None) or []),
                subscription_required=True,
                available_from=b.timestamp(data, "availability.start_date"),
                available_until=b.timestamp(data, "availability.end_date"),
                tier=min(tiers, key=TIERS.index) if tiers else None),
            images=Images(poster_medium=(art.get("program.tile") or {}).get("path"),
                          backdrop=(art.get("detail.horizontal.hero") or {}).get("path")),
            rating=b.maturity(b.text(data, "rating.code")), is_original=original,
            updated_at=fetched_at)
