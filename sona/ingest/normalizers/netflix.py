"""Netflix partner-feed normaliser.

Raw shape: ``netflixId`` (int), ``title``, ``synopsis``, ``releaseYear``, ``runtime``
(seconds), ``genres`` (Netflix labels, "Netflix Originals" for originals), ``maturity``
``{rating, board}``, ``original``, ``ids {imdb, tmdb}``, ``boxArt {"342x192", "665x375",
"1280x720"}``, ``storyArt``, ``countries``, ``availableFrom``/``expiresOn`` (dates),
``subtitles``, ``maxQuality``. Subscription only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sona.catalog.schema import Images, VideoQuality
from sona.ingest.normalizers import base as b
from sona.ingest.records import CanonicalRecord, OfferTerms

_QUALITIES: tuple[VideoQuality, ...] = ("SD", "HD", "UHD")


class NetflixNormalizer(b.Normalizer):
    """Netflix raw record -> canonical record."""

    platform = "netflix"

    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        labels = [str(g) for g in b.as_list(b.get(data, "genres", None), "genres")]
        best = b.text(data, "maxQuality") or "HD"
        if best not in _QUALITIES:
            raise b.FieldError("maxQuality", f"expected one of {_QUALITIES}, got {best!r}")
        art = b.get(data, "boxArt", None) or {}
        return CanonicalRecord(
            platform_content_id=str(b.integer(data, "netflixId") or b.get(data, "netflixId")),
            platform_id=self.platform, title=b.text(data, "title", required=True) or "",
            overview=b.text(data, "synopsis"), release_year=b.year_of(data, "releaseYear"),
            runtime_minutes=b.minutes_from_seconds(b.number(data, "runtime")),
            genres=b.genres_from(labels), raw_genres=labels,
            external_ids=b.external_ids(imdb=b.get(data, "ids.imdb", None),
                                        tmdb=b.get(data, "ids.tmdb", None)),
            availability=OfferTerms(
                regions=[str(r).upper() for r in b.as_list(b.get(data, "countries", None),
                                                            "countries")],
                subscription_required=True, available_from=b.timestamp(data, "availableFrom"),
                available_until=b.timestamp(data, "expiresOn"),
                video_qualities=list(_QUALITIES[1:_QUALITIES.index(best) + 1]) or ["SD"],
                subtitle_languages=list(b.get(data, "subtitles", None) or [])),
            images=Images(poster_small=art.get("342x192"), poster_medium=art.get("665x375"),
                          poster_large=art.get("1280x720"), backdrop=b.text(data, "storyArt")),
            rating=b.maturity(b.text(data, "maturity.rating")),
            is_original=bool(b.get(data, "original", False)), updated_at=fetched_at)
