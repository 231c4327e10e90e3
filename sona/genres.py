"""The one canonical genre vocabulary (SPEC §1) and the label mapping onto it (SPEC §4).

The original system spelled science fiction three ways (``sci_fi`` / ``science_fiction`` /
``scifi``) across ingestion, the intent parser and facets. Here every component maps labels
through :func:`map_genre` / :func:`map_genres`, so a genre has exactly one spelling: the
24 values of :data:`GENRES`.

Labels are matched after :func:`normalize_label` (lower-case, ``&`` -> ``and``, punctuation
other than letters/digits turned into single spaces), so ``"Action & Adventure"``,
``"action-adventure"`` and ``"ACTION AND ADVENTURE"`` are one key. A label may map to several
canonical genres (``"True Crime"`` -> crime + documentary) or to none (``"unknown"``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

log = logging.getLogger(__name__)

GENRES: tuple[str, ...] = (
    "action", "adventure", "animation", "comedy", "crime", "documentary", "drama",
    "family", "fantasy", "horror", "mystery", "romance", "sci_fi", "thriller", "western",
    "musical", "war", "biography", "history", "sport", "game_show", "reality_tv",
    "talk_show", "news",
)
"""The fixed 24-value canonical vocabulary of SPEC §1, in SPEC order."""

GENRE_SET: frozenset[str] = frozenset(GENRES)

# label (normalised) -> canonical genres. Platform vocabularies, MovieLens genres, the intent
# parser's tokens and the canonical names themselves all live in this one table.
_TABLE: dict[str, tuple[str, ...]] = {
    # canonical names and their obvious spellings
    **{g: (g,) for g in GENRES},
    **{g.replace("_", " "): (g,) for g in GENRES if "_" in g},
    "sci fi": ("sci_fi",), "scifi": ("sci_fi",), "science fiction": ("sci_fi",),
    "science fiction and fantasy": ("sci_fi", "fantasy"),
    "sci fi and fantasy": ("sci_fi", "fantasy"),
    "science_fiction": ("sci_fi",), "sf": ("sci_fi",), "star trek": ("sci_fi",),
    "space": ("sci_fi",), "futuristic": ("sci_fi",),
    "action and adventure": ("action", "adventure"), "action adventure": ("action", "adventure"),
    "actions": ("action",), "thrillers": ("thriller",), "suspense": ("thriller",),
    "comedies": ("comedy",), "stand up": ("comedy",), "stand up comedy": ("comedy",),
    "sitcom": ("comedy",), "sitcoms": ("comedy",), "romcom": ("comedy", "romance"),
    "romantic comedy": ("comedy", "romance"), "romantic comedies": ("comedy", "romance"),
    "dramas": ("drama",), "romantic": ("romance",), "romance movies": ("romance",),
    "romantic movies": ("romance",), "crime movies": ("crime",),
    "mystery and thrillers": ("mystery", "thriller"),
    "mystery and thriller": ("mystery", "thriller"),
    "music videos and concerts": ("musical",), "national geographic": ("documentary",),
    "horror movies": ("horror",), "scary": ("horror",),
    "mystery and suspense": ("mystery", "thriller"), "mysteries": ("mystery",),
    "crime dramas": ("crime", "drama"), "crime tv": ("crime",), "police": ("crime",),
    "film noir": ("crime", "mystery"), "noir": ("crime", "mystery"),
    "true crime": ("crime", "documentary"),
    "documentaries": ("documentary",), "docuseries": ("documentary",), "docs": ("documentary",),
    "nature": ("documentary",), "masterclass": ("documentary",),
    "science and nature": ("documentary",),
    "animated": ("animation",), "anime": ("animation",), "cartoons": ("animation",),
    "kids": ("family",), "kids and family": ("family",), "children": ("family",),
    "childrens": ("family",), "children s": ("family",), "family movies": ("family",),
    "nickelodeon": ("family", "animation"), "disney channel": ("family",),
    "pixar": ("animation", "family"),
    "fantasy movies": ("fantasy",), "music": ("musical",), "musicals": ("musical",),
    "music and musicals": ("musical",), "concert films": ("musical",),
    "westerns": ("western",), "war movies": ("war",), "military and war": ("war",),
    "biopic": ("biography",), "biographical": ("biography",), "biopics": ("biography",),
    "historical": ("history",), "period pieces": ("history", "drama"),
    "sports": ("sport",), "wwe": ("sport",), "premier league": ("sport",), "nfl": ("sport",),
    "game shows": ("game_show",), "reality": ("reality_tv",), "reality tv": ("reality_tv",),
    "late night": ("talk_show",), "talk shows": ("talk_show",), "talk": ("talk_show",),
    "news and politics": ("news",), "current affairs": ("news",),
    "independent": ("drama",), "indie": ("drama",), "international": ("drama",),
    "arthouse": ("drama",),
    "unknown": (), "other": (), "uncategorized": (), "featured": (), "new releases": (),
    "movies": (), "tv shows": (),
}

_ORIGINALS = re.compile(r"^[a-z0-9 ]*\boriginals?$")


def normalize_label(label: str) -> str:
    """Normalise a genre label for lookup: fold accents, lower-case, ``&`` -> ``and``.

    Everything but letters and digits becomes a single space, so ``"Sci-Fi"`` -> ``"sci fi"``.
    """
    text = unicodedata.normalize("NFKD", label)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    text = text.replace("'", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def map_genre(label: str) -> tuple[str, ...]:
    """Canonical genres of one platform/MovieLens/query label (empty when it has none).

    ``"Netflix Originals"``-style labels (``"<brand> Original(s)"``) map to drama (SPEC §4).
    Unknown labels map to ``()`` and are logged at debug level, never guessed.
    """
    key = normalize_label(label)
    if key in _TABLE:
        return _TABLE[key]
    underscored = key.replace(" ", "_")
    if underscored in GENRE_SET:
        return (underscored,)
    if _ORIGINALS.match(key):
        return ("drama",)
    if key.endswith("s") and key[:-1] in _TABLE:  # simple plural: "Westerns", "Horrors"
        return _TABLE[key[:-1]]
    log.debug("genre label %r has no canonical mapping", label)
    return ()


def map_genres(labels: Iterable[str]) -> list[str]:
    """Map many labels onto the canonical vocabulary, de-duplicated, in canonical order."""
    found = {g for label in labels for g in map_genre(label)}
    return [g for g in GENRES if g in found]


def is_known_label(label: str) -> bool:
    """Whether ``label`` is in the mapping table (even if it maps to no genre)."""
    key = normalize_label(label)
    return key in _TABLE or key.replace(" ", "_") in GENRE_SET or bool(_ORIGINALS.match(key))


def check_genres(genres: Iterable[str]) -> list[str]:
    """Validate that every value is canonical; returns them in canonical order.

    Raises:
        ValueError: a value outside the 24-value vocabulary (names it).
    """
    values = list(genres)
    bad = [g for g in values if g not in GENRE_SET]
    if bad:
        raise ValueError(f"not canonical genre(s): {bad}; expected one of {list(GENRES)}")
    present = set(values)
    return [g for g in GENRES if g in present]


# MovieLens 100K genre labels, mapped explicitly so a table change is visible in review
MOVIELENS_GENRES: dict[str, tuple[str, ...]] = {
    "Action": ("action",), "Adventure": ("adventure",), "Animation": ("animation",),
    "Children's": ("family",), "Comedy": ("comedy",), "Crime": ("crime",),
    "Documentary": ("documentary",), "Drama": ("drama",), "Fantasy": ("fantasy",),
    "Film-Noir": ("crime", "mystery"), "Horror": ("horror",), "Musical": ("musical",),
    "Mystery": ("mystery",), "Romance": ("romance",), "Sci-Fi": ("sci_fi",),
    "Thriller": ("thriller",), "War": ("war",), "Western": ("western",), "unknown": (),
}


def movielens_genres(labels: Iterable[str]) -> list[str]:
    """Canonical genres of a MovieLens item's genre labels (canonical order)."""
    found = {g for label in labels for g in MOVIELENS_GENRES.get(label, map_genre(label))}
    return [g for g in GENRES if g in found]


__all__ = [
    "GENRES", "GENRE_SET", "MOVIELENS_GENRES", "check_genres", "is_known_label", "map_genre",
    "map_genres", "movielens_genres", "normalize_label",
]
