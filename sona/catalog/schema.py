"""Pydantic schema of the canonical catalog entry, ``ContentItem`` (SPEC §1).

One :class:`ContentItem` is one real-world work (a movie, a series, an episode...) however
many platforms offer it: each platform offer is one :class:`Availability`, each platform's
own id sits in ``external_ids.platform_ids``. Genres are restricted to the 24 canonical
values of :mod:`sona.genres`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sona.genres import check_genres

ContentType = Literal["movie", "series", "episode", "short", "documentary", "special"]
MaturityRating = Literal[
    "G", "PG", "PG13", "R", "NC17", "NR", "TVY", "TVY7", "TVG", "TVPG", "TV14", "TVMA"
]
Platform = Literal[
    "netflix", "prime_video", "disney_plus", "hulu", "apple_tv_plus", "hbo_max", "peacock",
    "paramount_plus", "youtube", "crave", "bbc_iplayer",
]
PLATFORMS: tuple[str, ...] = (
    "netflix", "prime_video", "disney_plus", "hulu", "apple_tv_plus", "hbo_max", "peacock",
    "paramount_plus", "youtube",
)
"""The nine platforms with a normaliser (SPEC §4); crave and bbc_iplayer have none."""
AvailabilityType = Literal["subscription", "rental", "purchase", "free"]
VideoQuality = Literal["SD", "HD", "UHD", "HDR"]
AudioQuality = Literal["stereo", "surround_5_1", "surround_7_1", "atmos", "dts_x"]
SeriesStatus = Literal["ongoing", "ended", "cancelled", "hiatus"]


def utcnow() -> datetime:
    """Timezone-aware current UTC time (the one clock helper of the catalog)."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExternalIds(_Model):
    """Cross-platform identifiers; ``platform_ids`` maps platform -> that platform's id."""

    eidr_id: str | None = None
    imdb_id: str | None = None
    tmdb_id: str | None = None
    tvdb_id: str | None = None
    gracenote_tms_id: str | None = None
    platform_ids: dict[str, str] = Field(default_factory=dict)


class CastMember(_Model):
    """One cast credit."""

    name: str
    character: str | None = None
    order: int | None = None


class Credits(_Model):
    """People credited on the work."""

    directors: list[str] = Field(default_factory=list)
    writers: list[str] = Field(default_factory=list)
    producers: list[str] = Field(default_factory=list)
    cast: list[CastMember] = Field(default_factory=list)


class Images(_Model):
    """Artwork URLs."""

    poster_small: str | None = None
    poster_medium: str | None = None
    poster_large: str | None = None
    backdrop: str | None = None
    thumbnail: str | None = None
    logo: str | None = None


class SeriesInfo(_Model):
    """Series/episode structure (absent for movies)."""

    total_seasons: int | None = None
    total_episodes: int | None = None
    season_number: int | None = None
    episode_number: int | None = None
    series_id: str | None = None
    status: SeriesStatus | None = None


class Availability(_Model):
    """One platform offer of a work (SPEC §1): how, where, when and for how much."""

    platform: Platform
    availability_type: AvailabilityType
    price_cents: int | None = Field(default=None, ge=0)
    currency: str | None = None
    video_qualities: list[VideoQuality] = Field(default_factory=list)
    audio_qualities: list[AudioQuality] = Field(default_factory=list)
    subtitle_languages: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)  # ISO 3166-1 alpha-2
    available_from: datetime | None = None
    available_until: datetime | None = None
    deep_link_url: str | None = None
    web_url: str | None = None


class ContentItem(_Model):
    """The canonical catalog entry (SPEC §1).

    ``canonical_id`` is a UUID string, or, for items seeded from MovieLens-100K
    (:mod:`sona.ingest.movielens`), the MovieLens item id as a string of digits (``"50"`` is
    Star Wars). So model item ids, search document ids and catalog ids are one id space with
    no translation layer; items that only platform feeds or the admin API bring get UUIDs.
    """

    canonical_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    content_type: ContentType = "movie"
    title: str = Field(min_length=1)
    original_title: str | None = None
    alternate_titles: dict[str, str] = Field(default_factory=dict)  # language -> title
    overview: str | None = None
    keywords: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)
    release_year: int | None = Field(default=None, ge=1870, le=2100)
    release_date: datetime | None = None
    runtime_minutes: int | None = Field(default=None, ge=0)
    original_language: str | None = None
    audio_languages: list[str] = Field(default_factory=list)
    genres: list[str] = Field(default_factory=list)
    maturity_rating: MaturityRating | None = None
    external_ids: ExternalIds = Field(default_factory=ExternalIds)
    credits: Credits = Field(default_factory=Credits)
    images: Images = Field(default_factory=Images)
    series: SeriesInfo | None = None
    availability: list[Availability] = Field(default_factory=list)
    average_rating: float | None = Field(default=None, ge=0, le=10)
    rating_count: int | None = Field(default=None, ge=0)
    popularity_score: float = Field(default=0.0, ge=0, le=1)
    data_quality_score: float = Field(default=0.0, ge=0, le=1)
    source_platforms: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_updated: datetime = Field(default_factory=utcnow)
    embedding: list[float] | None = None
    embedding_model: str | None = None
    embedding_version: str | None = None

    @field_validator("genres")
    @classmethod
    def _canonical_genres(cls, value: list[str]) -> list[str]:
        return check_genres(value)

    @field_validator("canonical_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if is_seed_id(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise ValueError(f"canonical_id must be a UUID or a MovieLens seed id (digits), "
                             f"got {value!r}") from exc


def is_seed_id(value: str) -> bool:
    """Whether ``value`` is a MovieLens seed id: ASCII digits without a leading zero."""
    return (0 < len(value) <= 12 and value.isascii() and value.isdigit()
            and (value == "0" or not value.startswith("0")))


__all__ = [
    "PLATFORMS", "Availability", "AvailabilityType", "CastMember", "ContentItem", "ContentType",
    "Credits", "ExternalIds", "Images", "MaturityRating", "Platform", "SeriesInfo", "is_seed_id",
    "utcnow",
]
