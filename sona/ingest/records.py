"""Ingestion record types: the raw platform record and the canonical record (SPEC §4).

A :class:`RawRecord` is what a platform feed (or webhook) delivers: ``{id, platform,
data, fetched_at}`` with ``data`` in the platform's own JSON shape. A per-platform
normaliser turns it into a :class:`CanonicalRecord`, which entity resolution links to a
catalog entity and :func:`sona.ingest.merge.merge_records` folds into a
:class:`~sona.catalog.schema.ContentItem`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sona.catalog.deeplinks import DeepLinks
from sona.catalog.schema import (
    PLATFORMS,
    Availability,
    ContentType,
    Images,
    MaturityRating,
    VideoQuality,
)
from sona.genres import check_genres


class RawRecord(BaseModel):
    """One record of a platform feed, in the platform's own ``data`` shape."""

    model_config = ConfigDict(extra="forbid")

    id: str
    platform: str
    data: dict[str, Any]
    fetched_at: datetime

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        if value not in PLATFORMS:
            raise ValueError(f"unknown platform {value!r}; expected one of {list(PLATFORMS)}")
        return value


class OfferTerms(BaseModel):
    """The canonical record's availability (SPEC §4): one platform's terms for one title.

    Prices are in major currency units (``3.99``), as the platforms publish them.
    """

    model_config = ConfigDict(extra="forbid")

    regions: list[str] = Field(default_factory=list)
    subscription_required: bool = False
    purchase_price: float | None = Field(default=None, ge=0)
    rental_price: float | None = Field(default=None, ge=0)
    currency: str | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    tier: str | None = None  # platform plan, e.g. "ad_supported", "premium_plus"
    video_qualities: list[VideoQuality] = Field(default_factory=list)
    subtitle_languages: list[str] = Field(default_factory=list)


class CanonicalRecord(BaseModel):
    """A platform record in canonical form (SPEC §4), before entity resolution."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    platform_content_id: str
    platform_id: str
    entity_id: str | None = None
    title: str = Field(min_length=1)
    overview: str | None = None
    content_type: ContentType = "movie"
    release_year: int | None = None
    runtime_minutes: int | None = Field(default=None, ge=0)
    genres: list[str] = Field(default_factory=list)
    raw_genres: list[str] = Field(default_factory=list)  # the platform's own labels
    external_ids: dict[str, str] = Field(default_factory=dict)  # eidr_id, imdb_id, tmdb_id
    availability: OfferTerms = Field(default_factory=OfferTerms)
    images: Images = Field(default_factory=Images)
    rating: MaturityRating | None = None
    user_rating: float | None = Field(default=None, ge=0, le=10)  # 0-10 scale
    popularity: float | None = Field(default=None, ge=0, le=1)
    is_original: bool = False
    deep_links: DeepLinks | None = None
    embedding: list[float] | None = None
    updated_at: datetime

    @field_validator("genres")
    @classmethod
    def _canonical(cls, value: list[str]) -> list[str]:
        return check_genres(value)

    @property
    def key(self) -> str:
        """``"<platform>:<platform_content_id>"``, unique across all feeds."""
        return f"{self.platform_id}:{self.platform_content_id}"

    def offers(self) -> list[Availability]:
        """The catalog :class:`Availability` offers these terms describe (one per kind)."""
        terms = self.availability
        common: dict[str, Any] = {
            "platform": self.platform_id, "currency": terms.currency,
            "video_qualities": terms.video_qualities, "regions": terms.regions,
            "subtitle_languages": terms.subtitle_languages,
            "available_from": terms.available_from, "available_until": terms.available_until,
            "deep_link_url": self.deep_links.mobile if self.deep_links else None,
            "web_url": self.deep_links.web if self.deep_links else None,
        }
        out = []
        if terms.subscription_required:
            out.append(Availability(availability_type="subscription", **common))
        if terms.rental_price is not None:
            out.append(Availability(availability_type="rental",
                                    price_cents=round(terms.rental_price * 100), **common))
        if terms.purchase_price is not None:
            out.append(Availability(availability_type="purchase",
                                    price_cents=round(terms.purchase_price * 100), **common))
        if not out:
            out.append(Availability(availability_type="free", **common))
        return out


__all__ = ["CanonicalRecord", "DeepLinks", "OfferTerms", "RawRecord"]
