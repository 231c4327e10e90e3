"""Paramount+ normaliser (essential / premium / showtime tiers, paramount_original).

Raw shape: ``contentId``, ``title``, ``shortDescription``, ``airDate`` (US ``MM/DD/YYYY``),
``duration`` (``"1h 48m"``), ``genre`` (primary label), ``subGenres`` (more labels and
brands such as "Star Trek" or "Nickelodeon", mapped by the shared genre table), ``tier``
(``ESSENTIAL``/``PREMIUM``/``SHOWTIME``), ``isParamountOriginal``, ``regionalRatings
{country: rating}``, ``ids {eidr, imdb, tmdb}``, ``thumbnails {poster, hero}``,
``availableRegions``, ``startDate``/``endDate``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

TIERS = ("essential", "premium", "showtime")
_US_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")


class ParamountPlusNormalizer(b.Normalizer):
    """Paramount+ raw record -> canonical record."""

    platform = "paramount_plus"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        primary = b.text(data, "genre")
        labels = ([primary] if primary else []) + [
            str(g) for g in b.as_list(b.get(data, "subGenres", None), "subGenres")]
        tier = (b.text(data, "tier") or "ESSENTIAL").lower()
        if tier not in TIERS:
            raise b.FieldError("tier", f"expected one of {list(TIERS)}, got {tier!r}")
        air = b.text(data, "airDate")
        year = None
        if air is not None:
            m = _US_DATE.match(air)
            if not m:
                raise b.FieldError("airDate", f"expected MM/DD/YYYY, got {air!r}")
            year = int(m.group(3))
        original = bool(b.get(data, "isParamountOriginal", False))
        thumbs = b.get(data, "thumbnails", None) or {}
        return CanonicalRecord(
            platform_content_id=b.text(data, "contentId", required=True) or "",
            platform_id=self.platform, title=b.text(data, "title", required=True) or "",
            overview=b.text(data, "shortDescription"), release_year=year,
            runtime_minutes=b.human_duration_minutes(data, "duration"),
            genres=b.genres_from(labels + (["Paramount+ Originals"] if original else [])),
            raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "ids.eidr", None),
                                        imdb=b.get(data, "ids.imdb", None),
                                        tmdb=b.get(data, "ids.tmdb", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "availableRegions", None) or []),
                subscription_required=True, available_from=b.timestamp(data, "startDate"),
                available_until=b.timestamp(data, "endDate"), tier=tier),
            images=Images(poster_medium=thumbs.get("poster"), backdrop=thumbs.get("hero")),
            rating=b.maturity(b.text(data, "regionalRatings.US")), is_original=original,
            updated_at=fetched_at)
