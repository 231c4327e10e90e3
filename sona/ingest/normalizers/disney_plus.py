"""Disney+ content-API normaliser.

Raw shape: ``contentId``, ``programType``, ``text {title {full}, description {medium}}``,
``releases [{releaseType, releaseYear}]``, ``mediaMetadata {runtimeMillis, videoQualities}``,
``typedGenres [{name}]``, ``ratings [{system, value}]``, ``externalIds {eidr, imdb, tmdb}``,
``image {tile {"0.71" {url}}, background {"1.78" {url}}}``, ``brand`` (Disney, Pixar,
National Geographic...: mapped as a genre label too), ``regions``,
``availability {appearsFrom, expiresAt}``. Subscription only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

_TYPES = {"movie": "movie", "series": "series", "episode": "episode", "short": "short",
          "special": "special"}


def _art(data: dict[str, Any], kind: str, ratio: str) -> str | None:
    # aspect-ratio keys contain dots, so they cannot be part of a dotted path
    by_ratio = b.get(data, f"image.{kind}", None) or {}
    return b.text(by_ratio.get(ratio) or {}, "url")


class DisneyPlusNormalizer(b.Normalizer):
    """Disney+ raw record -> canonical record."""

    platform = "disney_plus"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        labels = [b.text(g, "name", required=True) or ""
                  for g in b.as_list(b.get(data, "typedGenres", None), "typedGenres")]
        brand = b.text(data, "brand")
        kind = b.text(data, "programType") or "movie"
        if kind not in _TYPES:
            raise b.FieldError("programType", f"expected one of {list(_TYPES)}, got {kind!r}")
        releases = b.as_list(b.get(data, "releases", None), "releases")
        original = [r for r in releases if r.get("releaseType") == "original"] or releases
        mpaa = [r for r in b.as_list(b.get(data, "ratings", None), "ratings")
                if r.get("system") in ("MPAA", "TV")]
        millis = b.number(data, "mediaMetadata.runtimeMillis")
        return CanonicalRecord(
            platform_content_id=b.text(data, "contentId", required=True) or "",
            platform_id=self.platform, title=b.text(data, "text.title.full", required=True) or "",
            overview=b.text(data, "text.description.medium"), content_type=_TYPES[kind],  # type: ignore[arg-type]
            release_year=b.year_of(original[0], "releaseYear") if original else None,
            runtime_minutes=None if millis is None else round(millis / 60_000),
            genres=b.genres_from(labels + ([brand] if brand else [])), raw_genres=labels,
            external_ids=b.external_ids(eidr=b.get(data, "externalIds.eidr", None),
                                        imdb=b.get(data, "externalIds.imdb", None),
                                        tmdb=b.get(data, "externalIds.tmdb", None)),
            availability=OfferTerms(
                regions=list(b.get(data, "regions", None) or []), subscription_required=True,
                available_from=b.timestamp(data, "availability.appearsFrom"),
                available_until=b.timestamp(data, "availability.expiresAt"),
                video_qualities=list(b.get(data, "mediaMetadata.videoQualities", None) or [])),
            images=Images(poster_medium=_art(data, "tile", "0.71"),
                          backdrop=_art(data, "background", "1.78")),
            rating=b.maturity(mpaa[0].get("value")) if mpaa else None, updated_at=fetched_at)
