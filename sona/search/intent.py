"""Rule-based query intent parsing (SPEC §3.2 rule fallback, extended).

``parse_query("90s sci-fi comedies on netflix under 2 hours")`` extracts hard filters
(genres, decades/years, platforms, runtime, maturity), soft preferences (moods, weak genre
words such as "space"), references ("like The Matrix", "similar to Alien") and the residual
free text that keyword search still needs. Genre words go through the one shared mapping
(:func:`sona.genres.map_genre`), platforms through :data:`~sona.search.filters.PLATFORM_ALIASES`.

The parser never guesses titles: references are returned as text and resolved to item ids by
the engine (an unresolved reference goes back into the free text). Confidence is 0.5, the
original's rule-fallback value, when anything was extracted and 0 otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from sona.genres import GENRES, map_genre
from sona.search.filters import PLATFORM_ALIASES, SearchFilters, normalize_maturity

IntentType = Literal["search", "recommendation", "trivia"]

_DECADE_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950,
                 "sixties": 1960, "seventies": 1970, "eighties": 1980, "nineties": 1990}
# weak genre words: also common in titles ("Lost in Space"), so they only boost, never filter
_WEAK_GENRE_WORDS = frozenset({
    "space", "police", "talk", "nature", "music", "reality", "kids", "children", "scary",
    "noir", "sf", "indie", "independent", "international", "arthouse", "romantic", "docs",
    "suspense", "futuristic", "historical", "animated", "sports", "biopic", "cartoons",
    "wars", "actions",
})
_MOODS: dict[str, tuple[str, tuple[str, ...]]] = {
    # phrase -> (mood, genres it favours)
    "feel good": ("happy", ("comedy", "family", "animation", "musical")),
    "uplifting": ("happy", ("comedy", "family", "musical")),
    "heartwarming": ("happy", ("family", "drama", "romance")),
    "happy": ("happy", ("comedy", "family", "musical")),
    "cheerful": ("happy", ("comedy", "family", "musical")),
    "fun": ("happy", ("comedy", "adventure", "animation")),
    "funny": ("happy", ("comedy",)), "hilarious": ("happy", ("comedy",)),
    "exciting": ("energetic", ("action", "adventure", "thriller")),
    "thrilling": ("energetic", ("action", "thriller")),
    "action packed": ("energetic", ("action",)), "intense": ("energetic", ("thriller", "action")),
    "sad": ("sad", ("drama", "romance")), "tearjerker": ("sad", ("drama", "romance")),
    "emotional": ("sad", ("drama", "romance")), "moving": ("sad", ("drama",)),
    "relaxing": ("relaxed", ("comedy", "family", "documentary")),
    "chill": ("relaxed", ("comedy", "family")), "cozy": ("relaxed", ("family", "comedy")),
    "calm": ("calm", ("documentary", "drama")), "light": ("relaxed", ("comedy", "family")),
    "thought provoking": ("introspective", ("drama", "documentary", "sci_fi")),
    "mind bending": ("focused", ("sci_fi", "mystery", "thriller")),
    "cerebral": ("focused", ("sci_fi", "mystery", "drama")),
    "dark": ("introspective", ("crime", "thriller", "horror", "drama")),
    "gritty": ("introspective", ("crime", "war", "drama")),
    "creepy": ("energetic", ("horror", "thriller")), "spooky": ("energetic", ("horror",)),
    "date night": ("social", ("romance", "comedy")),
    "with friends": ("social", ("comedy", "action")),
    "epic": ("energetic", ("adventure", "war", "history")),
}
# platform words that are also ordinary title words count only after "on" ("on max")
_AMBIGUOUS_PLATFORMS = frozenset({"max", "apple", "amazon", "bbc", "prime", "peacock"})
_MATURITY_PHRASES = {"for kids": "PG", "kid friendly": "PG", "kids friendly": "PG",
                     "family friendly": "PG", "for children": "PG", "for the family": "PG",
                     "for toddlers": "G", "for teens": "PG13"}
_GENERIC = frozenset({"movie", "movies", "film", "films", "flick", "flicks", "show", "shows",
                      "series", "something", "some", "good", "best", "great", "top", "me",
                      "find", "watch", "want", "i", "to", "a", "an", "any", "recommend",
                      "suggest", "please", "from", "the", "on", "in", "with", "and", "or",
                      "about", "that", "are", "is", "released", "made", "of", "than", "like",
                      "stuff", "tv"})
_TRIVIA = re.compile(r"^(who|when|what year|which year|how many|how long)\b")
_RECOMMEND = re.compile(r"\b(recommend|suggest|what should i watch|something like|"
                        r"similar to|like)\b")
_RUNTIME = re.compile(
    r"\b(?P<op>under|less than|shorter than|below|at most|within|over|more than|"
    r"longer than|at least|above)\s+(?P<n>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>hours?|hrs?|h|minutes?|mins?|m)\b")
_RANGE = re.compile(r"\b(?:between\s+)?(?P<a>(?:18|19|20)\d\d)\s*(?:-|to|and|until)\s*"
                    r"(?P<b>(?:18|19|20)\d\d)\b")
_BOUND = re.compile(r"\b(?P<op>after|since|before|until|pre|post)\s*-?\s*"
                    r"(?P<y>(?:18|19|20)\d\d)\b")
_DECADE = re.compile(r"(?<![\w])(?:the\s+)?'?(?P<c>18|19|20)?(?P<d>\d)0\s*'?s\b")
_YEAR = re.compile(r"(?P<cue>\b(?:from|in|of|released in|year)\s+)?\b(?P<y>(?:18|19|20)\d\d)\b")
_RATED = re.compile(r"\b(?:rated\s+)?(?P<r>nc[- ]?17|pg[- ]?13|tv[- ]?(?:y7|y|g|pg|14|ma)|"
                    r"g|pg|r)\b(?=\s*(?:rated|movies?|films?|$|,|\s))")
_REFERENCE = re.compile(r"\b(?:like|similar to|such as|in the style of|reminds? me of)\s+"
                        r"(?P<ref>.+?)(?=\s+(?:on|from|in the|under|over|before|after|"
                        r"rated|for kids|but)\b|,|$)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedQuery:
    """What the parser understood (SPEC §3.2 shape via :meth:`to_dict`)."""

    original: str  # the query as typed
    text: str  # residual free text for keyword search (intent words removed)
    filters: SearchFilters = field(default_factory=SearchFilters)  # hard constraints
    moods: tuple[str, ...] = ()  # mood names (happy, energetic, sad, ...)
    soft_genres: tuple[str, ...] = ()  # genres favoured by moods and weak genre words
    references: tuple[str, ...] = ()  # titles after "like"/"similar to" (unresolved)
    intent: IntentType = "search"  # search / recommendation / trivia
    confidence: float = 0.0  # 0.5 when the rules extracted anything, else 0

    @property
    def has_intent(self) -> bool:
        """Whether anything beyond free text was extracted."""
        return bool(not self.filters.is_empty() or self.moods or self.soft_genres
                    or self.references)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{mood[], themes[], references[], filters{...}, fallback_query, ...}``."""
        f = self.filters
        filters: dict[str, Any] = {"genre": list(f.genres), "platform": list(f.platforms)}
        if f.year_min is not None or f.year_max is not None:
            filters["year_range"] = {"min": f.year_min, "max": f.year_max}
        if f.runtime_min is not None or f.runtime_max is not None:
            filters["runtime_range"] = {"min": f.runtime_min, "max": f.runtime_max}
        if f.max_maturity is not None:
            filters["max_maturity"] = f.max_maturity
        return {"intent": self.intent, "mood": list(self.moods), "themes": list(self.soft_genres),
                "references": list(self.references), "filters": filters,
                "fallback_query": self.text, "confidence": self.confidence}


def _norm(query: str) -> str:
    text = query.lower().replace("&", " and ").replace("+", " plus ")
    text = re.sub(r"[\u2018\u2019`]", "'", text)
    text = re.sub(r"[^\w' ]+|_", " ", text)
    return " ".join(text.split())


# (alias, normalised alias, pattern), longest alias first, compiled once
_PLATFORM_PATTERNS: list[tuple[str, str, re.Pattern[str]]] = [
    (alias, key, re.compile(rf"(?:\bon\s+)?\b{re.escape(key)}\b"))
    for alias in sorted(PLATFORM_ALIASES, key=len, reverse=True)
    for key in [_norm(alias.replace("+", " plus"))]
]


def _consume(text: str, match: re.Match[str]) -> str:
    return (text[: match.start()] + " " + text[match.end():]).strip()


def _decade_start(c: str | None, d: str) -> int:
    if c:
        return int(c) * 100 + int(d) * 10
    return (2000 if int(d) <= 2 else 1900) + int(d) * 10


def parse_query(query: str, *, reference_year: int = 2026) -> ParsedQuery:
    """Parse ``query`` into filters, moods, references and residual text.

    Args:
        query: the user's text (any case).
        reference_year: "recent"/"new" means the 5 years up to this one.
    """
    original = query.strip()
    refs: list[str] = []
    for ref_match in _REFERENCE.finditer(original):
        ref = re.sub(r"^(?:the movie|the film)\s+", "", ref_match.group("ref").strip(" .!?\"'"),
                     flags=re.IGNORECASE)
        if ref:
            refs.append(ref)
    text = _norm(original)
    if refs:
        text = re.sub(r"\b(?:like|similar to|such as|in the style of|reminds? me of)\s+.*?"
                      r"(?=\s+(?:on|from|in the|under|over|before|after|rated|for kids|but)\b|$)",
                      " ", text)
    values: dict[str, Any] = {}
    m: re.Match[str] | None
    # platforms: longest alias first, whole words only
    platforms: list[str] = []
    for alias, key, pattern in _PLATFORM_PATTERNS:
        m = pattern.search(text)
        if m is None or (key in _AMBIGUOUS_PLATFORMS and not m.group().startswith("on ")):
            continue
        platforms.append(PLATFORM_ALIASES[alias])
        text = _consume(text, m)
    if platforms:
        values["platforms"] = tuple(dict.fromkeys(platforms))
    # runtime
    for run_match in list(_RUNTIME.finditer(text))[::-1]:
        unit = run_match.group("unit")
        minutes = float(run_match.group("n")) * (60 if unit.startswith("h") else 1)
        at_least = run_match.group("op") in ("over", "more than", "longer than", "at least",
                                             "above")
        values["runtime_min" if at_least else "runtime_max"] = minutes
        text = _consume(text, run_match)
    # maturity
    for phrase, rating in _MATURITY_PHRASES.items():
        if re.search(rf"\b{phrase}\b", text):
            values["max_maturity"] = rating
            text = re.sub(rf"\b{phrase}\b", " ", text).strip()
    m = _RATED.search(text)
    if m and ("rated" in m.group() or len(m.group("r")) > 1):
        values["max_maturity"] = normalize_maturity(m.group("r"))
        text = _consume(text, m)
    # years: explicit ranges, open bounds, decades, single years
    m = _RANGE.search(text)
    if m:
        a, b = sorted((int(m.group("a")), int(m.group("b"))))
        values.update(year_min=a, year_max=b)
        text = _consume(text, m)
    for bound in list(_BOUND.finditer(text))[::-1]:
        y = int(bound.group("y"))
        if bound.group("op") in ("after", "since", "post"):
            values["year_min"] = y + (1 if bound.group("op") != "since" else 0)
        else:
            values["year_max"] = y - 1
        text = _consume(text, bound)
    m = _DECADE.search(text)
    if m:
        start = _decade_start(m.group("c"), m.group("d"))
        values.update(year_min=start, year_max=start + 9)
        text = _consume(text, m)
    for word, start in _DECADE_WORDS.items():
        if re.search(rf"\b{word}\b", text):
            values.update(year_min=start, year_max=start + 9)
            text = re.sub(rf"\b{word}\b", " ", text).strip()
    if re.search(r"\b(recent|new|latest)\b", text) and "year_min" not in values:
        values["year_min"] = reference_year - 5
        text = re.sub(r"\b(recent|new|latest)\b", " ", text).strip()
    if re.search(r"\b(classic|old)\b", text) and "year_max" not in values:
        values["year_max"] = 1979
        text = re.sub(r"\b(classic|old)\b", " ", text).strip()
    # moods (multi-word first), then genres over 3/2/1-word windows
    moods: list[str] = []
    soft: list[str] = []
    for phrase in sorted(_MOODS, key=len, reverse=True):
        if re.search(rf"\b{phrase}\b", text):
            mood, genres = _MOODS[phrase]
            moods.append(mood)
            soft.extend(genres)
            text = re.sub(rf"\b{phrase}\b", " ", text).strip()
    hard: list[str] = []
    tokens = text.split()
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        for n in (3, 2, 1):
            window = " ".join(tokens[i:i + n])
            if len(tokens[i:i + n]) < n or window in _GENERIC:
                continue
            mapped = map_genre(window)
            if mapped:
                if window in _WEAK_GENRE_WORDS:  # a preference, and still a title word
                    soft.extend(mapped)
                    kept.extend(tokens[i:i + n])
                else:
                    hard.extend(mapped)
                i += n
                break
        else:
            kept.append(tokens[i])
            i += 1
    # a bare year is a filter only with a cue ("from 1995") or when nothing else is left
    residual = [t for t in kept if t not in _GENERIC]
    years = [t for t in residual if re.fullmatch(r"(?:18|19|20)\d\d", t)]
    cue = _YEAR.search(" ".join(kept))
    if years and "year_min" not in values and (
            (cue and cue.group("cue")) or len(residual) == len(years)):
        y = int(years[0])
        values.update(year_min=y, year_max=y)
        residual.remove(years[0])
    if hard:
        values["genres"] = tuple(g for g in GENRES if g in set(hard))
        values["genre_mode"] = "all"
    filters = SearchFilters(**values)
    found_soft = tuple(g for g in GENRES if g in set(soft) and g not in set(hard))
    extracted = bool(values or moods or found_soft or refs)
    low = original.lower()
    intent: IntentType = ("trivia" if _TRIVIA.search(low) else
                          "recommendation" if _RECOMMEND.search(low) else "search")
    return ParsedQuery(
        original=original, text=" ".join(residual), filters=filters,
        moods=tuple(dict.fromkeys(moods)), soft_genres=found_soft, references=tuple(refs),
        intent=intent, confidence=0.5 if extracted else 0.0,
    )


def without_references(parsed: ParsedQuery, unresolved: list[str]) -> ParsedQuery:
    """Put references that matched no title back into the free text."""
    if not unresolved:
        return parsed
    keep = tuple(r for r in parsed.references if r not in unresolved)
    text = " ".join([parsed.text, *(_norm(r) for r in unresolved)]).strip()
    return dataclasses.replace(parsed, references=keep, text=text)


__all__ = ["IntentType", "ParsedQuery", "parse_query", "without_references"]
