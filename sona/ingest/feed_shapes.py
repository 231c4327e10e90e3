"""Per-platform habits of the generated feeds: coverage, id formats, quirks, genre labels.

:class:`Listing` is the platform-neutral description of one generated offer; the render
functions of :mod:`sona.ingest.feed_render` write it in each platform's own JSON shape.
The probabilities are invented but plausible (EIDR ids come with studio deliveries to Apple,
Amazon, Disney and Max; YouTube titles carry the year; Netflix exposes few external ids).
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

_ALNUM_UP = list(string.ascii_uppercase + string.digits)
_ALNUM_LOW = list(string.ascii_lowercase + string.digits)
_ALNUM = list(string.ascii_letters + string.digits)
_B64 = list(string.ascii_letters + string.digits + "-_")


@dataclass(frozen=True, slots=True)
class Listing:
    """One generated platform offer of a work (platform-neutral, before rendering)."""

    platform: str
    platform_content_id: str
    work_id: int
    title: str
    year: int | None
    runtime_minutes: int
    overview: str | None
    genres: list[str]  # canonical; rendered with the platform's labels
    maturity: str  # canonical rating
    eidr_id: str | None
    imdb_id: str | None
    tmdb_id: str | None
    regions: list[str]
    subscription: bool
    rental_price: float | None
    purchase_price: float | None
    currency: str
    available_from: datetime
    available_until: datetime | None
    tier: str | None  # canonical lowest plan that includes the title
    is_original: bool
    qualities: list[str]
    subtitles: list[str]
    user_rating: float | None  # 0-10
    popularity: float
    has_poster: bool
    has_backdrop: bool
    brand: str | None
    fetched_at: datetime
    views: int


def _chars(pool: list[str], n: int) -> Callable[[np.random.Generator], str]:
    return lambda rng: "".join(rng.choice(pool, n))


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _subscription(rng: np.random.Generator, tier: str | None) -> set[str]:
    return {"subscription"}


def _store(p_sub: float) -> Callable[[np.random.Generator, str | None], set[str]]:
    def kinds(rng: np.random.Generator, tier: str | None) -> set[str]:
        out = {k for k, p in (("subscription", p_sub), ("rental", 0.8), ("purchase", 0.9))
               if rng.random() < p}
        return out or {"purchase"}
    return kinds


def _peacock(rng: np.random.Generator, tier: str | None) -> set[str]:
    return {"free"} if tier == "free" else {"subscription"}


def _youtube(rng: np.random.Generator, tier: str | None) -> set[str]:
    if rng.random() < 0.3:
        return {"free"}
    return {"rental", "purchase"} if rng.random() < 0.7 else {"purchase"}


def _no_brand(title: str, genres: tuple[str, ...], rng: np.random.Generator) -> str | None:
    return None


def _disney_brand(title: str, genres: tuple[str, ...], rng: np.random.Generator) -> str | None:
    if "animation" in genres:
        return "Pixar" if rng.random() < 0.3 else "Disney"
    if "documentary" in genres:
        return "National Geographic"
    return "Disney"


def _paramount_brand(title: str, genres: tuple[str, ...], rng: np.random.Generator) -> str | None:
    if "star trek" in title.lower():
        return "Star Trek"
    if "family" in genres and "animation" in genres:
        return "Nickelodeon"
    return None


@dataclass(frozen=True, slots=True)
class PlatformProfile:
    """How one platform's generated feed looks (probabilities are per record)."""

    name: str
    coverage: float  # share of the catalog the platform lists
    new_id: Callable[[np.random.Generator], str]  # platform content id format
    labels: dict[str, str]  # canonical genre -> the platform's label
    p_eidr: float = 0.0
    p_imdb: float = 0.5
    p_tmdb: float = 0.3
    p_bare_imdb: float = 0.0  # IMDb id without the "tt" prefix
    p_inverted: float = 0.0  # keep MovieLens's "Matrix, The" spelling
    p_drop_alt: float = 0.5  # drop "(Se7en)"-style alternative titles
    p_accent: float = 0.02
    p_edition: float = 0.02
    p_upper: float = 0.0
    p_missing_year: float = 0.0
    p_missing_overview: float = 0.1
    p_missing_art: float = 0.05
    p_drop_genre: float = 0.15
    p_original: float = 0.0
    p_user_rating: float = 0.0
    regions: tuple[str, ...] = ("CA", "GB", "DE", "FR", "AU", "MX", "BR", "JP", "IN")
    tiers: tuple[str, ...] = ()
    offer_kinds: Callable[[np.random.Generator, str | None], set[str]] = _subscription
    brand_of: Callable[[str, tuple[str, ...], np.random.Generator], str | None] = _no_brand


def _labels(**overrides: str) -> dict[str, str]:
    base = {g: g.replace("_", "-").title() for g in (
        "action", "adventure", "animation", "comedy", "crime", "documentary", "drama", "family",
        "fantasy", "horror", "mystery", "romance", "sci_fi", "thriller", "western", "musical",
        "war", "biography", "history", "sport")}
    return base | overrides


GENRE_LABELS: dict[str, dict[str, str]] = {
    "netflix": _labels(action="Action & Adventure", adventure="Action & Adventure",
                       comedy="Comedies", crime="Crime Movies", documentary="Documentaries",
                       drama="Dramas", family="Kids & Family", horror="Horror Movies",
                       mystery="Mysteries", romance="Romantic Movies", thriller="Thrillers",
                       western="Westerns", musical="Music & Musicals", war="Military & War"),
    "prime_video": _labels(family="Kids", mystery="Mystery and Thrillers",
                           sci_fi="Science Fiction", thriller="Suspense",
                           musical="Music Videos and Concerts", war="Military and War"),
    "disney_plus": _labels(action="Action-Adventure", adventure="Action-Adventure",
                           sci_fi="Science Fiction", musical="Musicals"),
    "hulu": _labels(animation="Animated", documentary="Documentaries", sci_fi="Science Fiction",
                    musical="Music", war="Military and War"),
    "apple_tv_plus": _labels(family="Kids & Family", sci_fi="Science Fiction", musical="Music"),
    "hbo_max": _labels(action="Action/Adventure", adventure="Action/Adventure",
                       documentary="Documentaries", family="Kids & Family",
                       sci_fi="Sci-Fi & Fantasy", fantasy="Sci-Fi & Fantasy", thriller="Suspense",
                       western="Westerns", musical="Musicals"),
    "peacock": _labels(documentary="Docs", musical="Music"),
    "paramount_plus": _labels(),
    "youtube": {g: label.lower() for g, label in _labels().items()},
}

PROFILES: dict[str, PlatformProfile] = {p.name: p for p in (
    PlatformProfile("netflix", 0.45, _chars(list(string.digits), 8), GENRE_LABELS["netflix"],
                    p_imdb=0.55, p_tmdb=0.25, p_original=0.03),
    PlatformProfile("prime_video", 0.70, lambda rng: "B0" + _chars(_ALNUM_UP, 8)(rng),
                    GENRE_LABELS["prime_video"], p_eidr=0.55, p_imdb=0.9, p_tmdb=0.2,
                    p_bare_imdb=0.25, p_inverted=0.35, p_edition=0.06, p_user_rating=0.9,
                    offer_kinds=_store(0.45)),
    PlatformProfile("disney_plus", 0.20, _uuid, GENRE_LABELS["disney_plus"], p_eidr=0.7,
                    p_imdb=0.6, p_tmdb=0.6, p_drop_alt=0.8, brand_of=_disney_brand),
    PlatformProfile("hulu", 0.40, _uuid, GENRE_LABELS["hulu"], p_eidr=0.3, p_imdb=0.5,
                    p_bare_imdb=0.4, p_inverted=0.15, p_missing_overview=0.2, p_original=0.02,
                    tiers=("ad_supported", "ad_supported", "ad_free", "live_tv")),
    PlatformProfile("apple_tv_plus", 0.50, lambda rng: "umc.cmc." + _chars(_ALNUM_LOW, 25)(rng),
                    GENRE_LABELS["apple_tv_plus"], p_eidr=0.85, p_imdb=0.3, p_tmdb=0.1,
                    p_accent=0.1, p_drop_alt=0.3, p_original=0.01, tiers=("premium",),
                    offer_kinds=_store(0.1)),
    PlatformProfile("hbo_max", 0.30, lambda rng: "urn:hbo:feature:G" + _chars(_ALNUM, 20)(rng),
                    GENRE_LABELS["hbo_max"], p_eidr=0.7, p_imdb=0.7, p_edition=0.04,
                    p_original=0.02, tiers=("ad_supported", "ad_supported", "ad_free")),
    PlatformProfile("peacock", 0.30, lambda rng: "GMO_" + _chars(list(string.digits), 11)(rng),
                    GENRE_LABELS["peacock"], p_eidr=0.4, p_imdb=0.4, p_tmdb=0.4,
                    p_upper=0.02, p_original=0.01,
                    tiers=("free", "premium", "premium", "premium_plus"), offer_kinds=_peacock),
    PlatformProfile("paramount_plus", 0.25, _chars(_ALNUM + ["_"], 32),
                    GENRE_LABELS["paramount_plus"], p_eidr=0.5, p_imdb=0.5, p_upper=0.05,
                    p_original=0.01, tiers=("essential", "essential", "premium", "showtime"),
                    brand_of=_paramount_brand),
    PlatformProfile("youtube", 0.55, _chars(_B64, 11), GENRE_LABELS["youtube"], p_imdb=0.05,
                    p_tmdb=0.0, p_drop_alt=0.7, p_edition=0.05, p_missing_year=0.05,
                    p_missing_overview=0.05, p_missing_art=0.0, p_drop_genre=0.3,
                    offer_kinds=_youtube),
)}


__all__ = ["GENRE_LABELS", "PROFILES", "Listing", "PlatformProfile"]
