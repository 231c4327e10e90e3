"""Search filters (SPEC §3.3) and their evaluation over document arrays.

:class:`SearchFilters` is what a request's ``filters`` and the intent parser produce;
:class:`DocumentArrays` holds the per-document columns as numpy arrays (genre and platform
bit masks), so :meth:`DocumentArrays.mask` evaluates any filter over 100k documents in well
under a millisecond. The keyword index applies the same semantics natively in tantivy
(:mod:`sona.search.text_index`); a test checks the two agree.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona.genres import GENRES, map_genre

PLATFORMS: tuple[str, ...] = (
    "netflix", "prime_video", "disney_plus", "hulu", "apple_tv_plus", "hbo_max", "peacock",
    "paramount_plus", "youtube", "crave", "bbc_iplayer",
)
"""Platform spellings of SPEC §1 (the nine with normalisers, plus crave and bbc_iplayer)."""

PLATFORM_ALIASES: dict[str, str] = {
    **{p: p for p in PLATFORMS},
    **{p.replace("_", " "): p for p in PLATFORMS},
    "prime": "prime_video", "amazon": "prime_video", "amazon prime": "prime_video",
    "amazon prime video": "prime_video", "disney": "disney_plus", "disney+": "disney_plus",
    "hbo": "hbo_max", "max": "hbo_max", "apple tv": "apple_tv_plus", "apple tv+": "apple_tv_plus",
    "apple": "apple_tv_plus", "appletv": "apple_tv_plus", "paramount": "paramount_plus",
    "paramount+": "paramount_plus", "bbc": "bbc_iplayer", "iplayer": "bbc_iplayer",
    "bbc iplayer": "bbc_iplayer", "you tube": "youtube",
}
"""Lower-cased platform labels -> canonical platform (shared by filters, intent and facets)."""

MATURITY_LEVELS: dict[str, int] = {
    "G": 0, "TVY": 0, "TVG": 0, "TVY7": 1, "PG": 2, "TVPG": 2, "PG13": 3, "TV14": 3,
    "R": 4, "TVMA": 4, "NC17": 5,
}
"""Maturity rating -> ordinal level; ``NR`` (not rated) has no level and fails any limit."""
MATURITY_RATINGS: tuple[str, ...] = (*MATURITY_LEVELS, "NR")


def normalize_maturity(label: str) -> str:
    """``"PG-13"``/``"pg 13"``/``"TV-MA"`` -> ``"PG13"``/``"TVMA"``; raises on unknown labels."""
    key = re.sub(r"[^A-Z0-9]", "", label.upper())
    if key not in MATURITY_RATINGS:
        raise ValueError(f"unknown maturity rating {label!r}; expected one of "
                         f"{list(MATURITY_RATINGS)}")
    return key


def canonical_platform(label: str) -> str:
    """Canonical platform of a label (``"Disney+"`` -> ``"disney_plus"``); raises on unknown."""
    key = " ".join(label.lower().replace("_", " ").split())
    if key in PLATFORM_ALIASES:
        return PLATFORM_ALIASES[key]
    raise ValueError(f"unknown platform {label!r}; expected one of {list(PLATFORMS)}")


def canonical_genres(labels: Iterable[str]) -> tuple[str, ...]:
    """Canonical genres of request labels (``"Sci-Fi"`` -> ``"sci_fi"``); raises on unknown."""
    out: list[str] = []
    for label in labels:
        mapped = map_genre(label)
        if not mapped:
            raise ValueError(f"unknown genre {label!r}; expected one of {list(GENRES)}")
        out.extend(g for g in mapped if g not in out)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Hard constraints on results. Empty fields constrain nothing.

    Genres match ``any`` listed genre (facet semantics) or ``all`` of them (the intent
    parser's "sci-fi comedies"); platforms match any. Ranges are inclusive; a document with
    an unknown value (missing year, unrated) fails a range on that value.
    """

    genres: tuple[str, ...] = ()  # canonical genres
    genre_mode: Literal["any", "all"] = "any"  # how several genres combine
    platforms: tuple[str, ...] = ()  # canonical platforms, any-of
    year_min: int | None = None  # release year >=
    year_max: int | None = None  # release year <=
    rating_min: float | None = None  # average rating (0-10) >=
    rating_max: float | None = None  # average rating (0-10) <=
    runtime_min: float | None = None  # minutes >=
    runtime_max: float | None = None  # minutes <=
    max_maturity: str | None = None  # parental limit: maturity level <= this rating's level
    exclude_ids: tuple[Any, ...] = ()  # item ids never returned (e.g. a "like X" reference)
    # when set, the only item ids that may be returned: a request's availability filter
    # (platforms live now in a region) resolved by the caller from the catalog's offers,
    # which change with time and catalog writes, so they are not indexed document columns
    only_ids: frozenset[str] | None = None

    def is_empty(self) -> bool:
        """Whether no field constrains anything."""
        return self == SearchFilters()

    def merged(self, other: SearchFilters) -> SearchFilters:
        """Combine: ``self`` (explicit request filters) wins field by field over ``other``."""
        values = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            empty = mine in (None, ()) or (f.name == "genre_mode" and not self.genres)
            values[f.name] = theirs if empty else mine
        values["exclude_ids"] = tuple(dict.fromkeys((*self.exclude_ids, *other.exclude_ids)))
        if self.only_ids is not None and other.only_ids is not None:
            values["only_ids"] = self.only_ids & other.only_ids
        return SearchFilters(**values)

    def validated(self) -> SearchFilters:
        """Canonicalise labels and check ranges.

        Raises:
            ValueError: unknown genre/platform/maturity value or an inverted range.
        """
        for lo, hi in (("year_min", "year_max"), ("rating_min", "rating_max"),
                       ("runtime_min", "runtime_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo} {a} is greater than {hi} {b}")
        for name in ("rating_min", "rating_max"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 10.0:
                raise ValueError(f"{name} must lie in [0, 10], got {v}")
        return dataclasses.replace(
            self,
            genres=canonical_genres(self.genres),
            platforms=tuple(dict.fromkeys(canonical_platform(p) for p in self.platforms)),
            max_maturity=(normalize_maturity(self.max_maturity)
                          if self.max_maturity is not None else None),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without empty fields (logged with each search; ``only_ids`` as
        its size, the availability filter itself is logged by the caller)."""
        out: dict[str, Any] = {}
        if self.only_ids is not None:
            out["only_ids_count"] = len(self.only_ids)
        for f in dataclasses.fields(self):
            if f.name == "only_ids":
                continue
            v = getattr(self, f.name)
            if v not in (None, ()) and not (f.name == "genre_mode" and not self.genres):
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def _bits(values: pd.Series, vocab: tuple[str, ...]) -> NDArray[np.int64]:
    pos = {v: 1 << i for i, v in enumerate(vocab)}
    return np.array([sum(pos.get(x, 0) for x in set(vs)) for vs in values], dtype=np.int64)


@dataclass(frozen=True)
class DocumentArrays:
    """Per-document numpy columns used by filters, facets and boosts (row = position)."""

    genre_bits: NDArray[np.int64]
    platform_bits: NDArray[np.int64]
    year: NDArray[np.float64]
    rating: NDArray[np.float64]
    runtime: NDArray[np.float64]
    maturity_level: NDArray[np.float64]
    popularity: NDArray[np.float64]
    quality: NDArray[np.float64]

    @classmethod
    def from_documents(cls, documents: pd.DataFrame) -> DocumentArrays:
        """Build from a checked document frame (:func:`~sona.search.documents.check_documents`)."""
        levels = np.array([MATURITY_LEVELS.get(m, math.nan) for m in documents["maturity"]],
                          dtype=np.float64)
        return cls(
            genre_bits=_bits(documents["genres"], GENRES),
            platform_bits=_bits(documents["platforms"], PLATFORMS),
            year=documents["year"].to_numpy(np.float64),
            rating=documents["rating"].to_numpy(np.float64),
            runtime=documents["runtime"].to_numpy(np.float64),
            maturity_level=levels,
            popularity=documents["popularity"].to_numpy(np.float64),
            quality=documents["quality"].to_numpy(np.float64),
        )

    def __len__(self) -> int:
        return len(self.year)

    def mask(self, filters: SearchFilters, excluded_positions: NDArray[np.int64] | None = None
             ) -> NDArray[np.bool_]:
        """Boolean ``(n_docs,)`` mask of documents passing ``filters`` (canonical values)."""
        keep = np.ones(len(self), dtype=bool)
        if filters.genres:
            want = sum(1 << GENRES.index(g) for g in filters.genres)
            hit = self.genre_bits & want
            keep &= (hit == want) if filters.genre_mode == "all" else (hit != 0)
        if filters.platforms:
            want = sum(1 << PLATFORMS.index(p) for p in filters.platforms)
            keep &= (self.platform_bits & want) != 0
        with np.errstate(invalid="ignore"):
            for arr, lo, hi in ((self.year, filters.year_min, filters.year_max),
                                (self.rating, filters.rating_min, filters.rating_max),
                                (self.runtime, filters.runtime_min, filters.runtime_max)):
                if lo is not None:
                    keep &= arr >= lo
                if hi is not None:
                    keep &= arr <= hi
            if filters.max_maturity is not None:
                level = MATURITY_LEVELS.get(filters.max_maturity, -1)
                keep &= self.maturity_level <= level
        if excluded_positions is not None and len(excluded_positions):
            keep[excluded_positions] = False
        return keep


__all__ = [
    "MATURITY_LEVELS", "MATURITY_RATINGS", "PLATFORMS", "PLATFORM_ALIASES", "DocumentArrays",
    "SearchFilters", "canonical_genres", "canonical_platform", "normalize_maturity",
]
