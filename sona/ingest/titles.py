"""Title normalisation for entity resolution and display.

SPEC §4 rule 3 normalises a title by lower-casing, keeping alphanumerics and spaces and
collapsing whitespace (:func:`normalize_title`). Platform feeds differ in more than case, so
the matcher compares :func:`title_forms` instead (**NEW**). Each class of variation is
handled by a general rule, not a list of seen strings:

- accents are folded (``"Amélie"`` -> ``"amelie"``);
- a trailing article is restored (``"Matrix, The"`` -> ``"the matrix"``, also Le/La/Les/Il/
  Das...) and a leading English article dropped, so ``"Matrix"`` == ``"The Matrix"``;
- edition and format markers are recognised by *pattern*: a bracketed segment, or a suffix
  after ``:``/``-``/``|``, made only of edition vocabulary (qualifiers such as "director's",
  "uncut", "criterion", ordinals, years) with at least one head word ("edition", "cut",
  "version", "collection", "remastered", "widescreen", "4K"...). ``"[Uncut Version]"``,
  ``"- Criterion Collection"`` and ``"(25th Anniversary Edition)"`` all go; ``": First
  Contact"`` stays because "first"/"contact" are not edition words;
- a bracketed alternative title is *kept as an alias*: ``"Hate (Haine, La)"`` has the key
  ``"hate"`` and the alias ``"la haine"``, so a record titled ``"La Haine"`` still matches;
- ``&``/``+`` read as ``and``; symbols inside a word are dropped (``"M*A*S*H"`` -> ``"mash"``,
  ``"L.A."`` -> ``"la"``), other punctuation separates words;
- number words (zero to twenty) and roman numerals II-XX become digits (``"Part II"`` ==
  ``"Part 2"``, ``"Seven"`` == ``"7"``). ``I``, ``V``, ``X`` alone stay letters ("Malcolm X");
- the *head* of a subtitled title (``"terminator 2"`` of ``"Terminator 2: Judgment Day"``) is
  exposed for the dropped-subtitle rule, unless the subtitle is itself a sequel designation
  (``"Kill Bill: Vol. 2"``, ``"Alien: Part II"``): such a head would join a sequel.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_ARTICLES = ("the", "a", "an", "le", "la", "les", "l'", "il", "el", "lo", "los", "las", "gli",
             "das", "der", "die", "un", "une", "ein", "eine", "det", "den")
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+?),\s*(?P<art>" + "|".join(re.escape(a) for a in _ARTICLES) + r")"
    r"(?P<rest>\s*(\(.*\)|\[.*\])?\s*)$", re.IGNORECASE)
# Edition vocabulary: a segment is a marker when every word is in _MARKER_WORDS and one is a head.
_MARKER_HEADS = frozenset((
    "edition", "cut", "version", "collection", "remastered", "remaster", "restored", "restoration",
    "widescreen", "fullscreen", "uncut", "unrated", "uncensored", "extended", "theatrical",
    "anniversary", "hd", "sd", "uhd", "4k", "hdr", "1080p", "720p", "bluray", "blu", "ray", "dvd",
    "imax", "3d", "subtitled", "dubbed", "movie", "film", "criterion", "remastering", "release",
))
_MARKER_WORDS = _MARKER_HEADS | frozenset((
    "the", "a", "special", "collectors", "collector", "directors", "director", "final", "ultimate",
    "definitive", "deluxe", "limited", "digitally", "original", "international", "full", "screen",
    "official", "free", "english", "with", "subtitles", "subs", "of", "and", "new", "newly",
    "s", "in", "version", "uk", "us", "import", "region", "edition", "anniversary", "hq", "ultra",
    "high", "definition", "standard", "classic", "signature", "masterpiece", "vault", "diamond",
    "platinum", "gold", "legacy", "th", "st", "nd", "rd", "year", "years", "complete", "k",
))
_ORDINAL = re.compile(r"^\d+(st|nd|rd|th|[a-z])?$")
_SEGMENT = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\])")
_SEPARATOR = re.compile(r"\s*(?::|\s[-–—|](?=\s))\s*")
_TAIL_PIPE = re.compile(r"\s*\|\s*[^|]*$")
_YEAR = re.compile(r"^(1[89]\d\d|20\d\d)$")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?|aka|also known as|original title:?)\s+", re.IGNORECASE)
_INWORD_SYMBOLS = re.compile(r"(?<=\w)[*.'’`´](?=\w)")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty"))}
_ROMAN = {r: str(i) for i, r in enumerate((
    "", "", "ii", "iii", "iv", "", "vi", "vii", "viii", "ix", "", "xi", "xii", "xiii", "xiv",
    "xv", "xvi", "xvii", "xviii", "xix", "xx")) if r}
_SEQUEL_SUBTITLE = re.compile(r"^(?:part|vol|volume|chapter|episode|book)?\s*\d+\b")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+")  # English only: "Die Hard" keeps "die"


@dataclass(frozen=True, slots=True)
class TitleForms:
    """Everything the matcher compares about one title (see module docstring)."""

    key: str  # main comparison key, e.g. "terminator 2 judgment day"
    aliases: tuple[str, ...]  # keys of bracketed alternative titles, e.g. ("la haine",)
    head: str | None  # key before a droppable subtitle ("terminator 2"), else None

    @property
    def keys(self) -> tuple[str, ...]:
        """The main key followed by the alias keys (no empties, no repeats)."""
        out = [k for k in (self.key, *self.aliases) if k]
        return tuple(dict.fromkeys(out))


def fold_accents(text: str) -> str:
    """Strip combining marks after NFKD decomposition (``"é"`` -> ``"e"``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_title(title: str) -> str:
    """SPEC §4 normalisation: lower-case, keep alphanumerics and spaces, collapse whitespace."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in title.lower())
    return " ".join(kept.split())


def uninvert_article(title: str) -> str:
    """``"Matrix, The"`` -> ``"The Matrix"``; ``"Paris, Texas"`` is left alone.

    A parenthesised alternative title after the article is kept at the end:
    ``"Horseman on the Roof, The (Hussard sur le toit, Le)"`` ->
    ``"The Horseman on the Roof (Hussard sur le toit, Le)"``.
    """
    m = _TRAILING_ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    rest = m.group("rest").strip()
    return f"{art}{sep}{m.group('body').strip()}" + (f" {rest}" if rest else "")


def _marker_suffix(text: str) -> int | None:
    """Where a trailing edition marker after the last ``:``/`` - ``/`` | `` starts, if any."""
    last = None
    for m in _SEPARATOR.finditer(text):
        last = m
    if last is None or last.start() == 0 or not is_marker(text[last.end():]):
        return None
    return last.start()


def _words(text: str) -> list[str]:
    return normalize_title(fold_accents(text).replace("'", "").replace("’", "")).split()


def is_marker(segment: str) -> bool:
    """Whether ``segment`` (bracket content or suffix) is an edition/format marker or a year."""
    words = _words(segment.replace("-", ""))
    if not words:
        return False
    if len(words) == 1 and _YEAR.match(words[0]):
        return True
    known = [_marker_word(w) for w in words]
    if not all(w is not None or _ORDINAL.match(words[i]) for i, w in enumerate(known)):
        return False
    return any(w in _MARKER_HEADS for w in known)


def _marker_word(word: str) -> str | None:
    """The edition word ``word`` spells, allowing one typo in words of 6+ letters."""
    if word in _MARKER_WORDS:
        return word
    if len(word) >= 6:
        for known in _MARKER_WORDS:
            if len(known) >= 6 and Levenshtein.distance(word, known, score_cutoff=1) <= 1:
                return known
    return None


def strip_markers(title: str) -> tuple[str, list[str]]:
    """``title`` without edition markers and years, plus the bracketed alternatives it had.

    Markers can stack (``"Alien (Director's Cut) [HD] | Full Movie"``); bracket segments that
    are not markers are returned as alternative titles and removed from the main title.
    """
    text = title.strip()
    text = _TAIL_PIPE.sub(lambda m: "" if is_marker(m.group(0).strip(" |")) else m.group(0), text)
    alternatives: list[str] = []
    previous = None
    while previous != text:
        previous = text
        cut = _marker_suffix(text)
        if cut is not None:
            text = text[:cut].rstrip(" -–—|:,")
            continue
        segments = list(_SEGMENT.finditer(text))
        if segments:
            last = segments[-1]
            inner = last.group(1)[1:-1].strip()
            if is_marker(inner) or not inner:
                text = (text[:last.start()] + text[last.end():]).strip()
            elif text[:last.start()].strip():
                alternatives.append(_AKA.sub("", inner))
                text = (text[:last.start()] + text[last.end():]).strip()
    return text.strip(" -–—|:,"), alternatives[::-1]


def _key(text: str) -> str:
    text = fold_accents(uninvert_article(text)).lower()
    text = _INWORD_SYMBOLS.sub("", text).replace("&", " and ").replace("+", " and ")
    words = []
    for w in normalize_title(text).split():
        words.append(_NUMBER_WORDS.get(w) or _ROMAN.get(w) or w)
    key = " ".join(words)
    return _LEADING_ARTICLE.sub("", key) or key


def _head(title: str) -> str | None:
    m = re.search(r"\s*(?::|\s[-–—]\s)\s*", title)
    if m is None or m.start() == 0:
        return None
    subtitle = _key(title[m.end():])
    if not subtitle or _SEQUEL_SUBTITLE.match(subtitle):
        return None
    return _key(title[:m.start()]) or None


def title_forms(title: str) -> TitleForms:
    """The main key, alias keys and droppable-subtitle head of ``title`` (module docstring)."""
    core, alternatives = strip_markers(title)
    core = uninvert_article(core or title)
    key = _key(core)
    aliases = tuple(a for a in (_key(alt) for alt in alternatives) if a and a != key)
    return TitleForms(key=key, aliases=aliases, head=_head(core))


def match_key(title: str) -> str:
    """The main comparison key of ``title`` (may be ``""`` for a title of symbols only)."""
    return title_forms(title).key


def numbers_of(key: str) -> tuple[str, ...]:
    """The digit tokens of a key, in order: the sequel guard compares these."""
    return tuple(w for w in key.split() if w.isdigit())


def strip_decorations(title: str) -> str:
    """Remove edition/format markers and a bracketed year (display-safe; aliases stay)."""
    text = title.strip()
    text = _TAIL_PIPE.sub(lambda m: "" if is_marker(m.group(0).strip(" |")) else m.group(0), text)
    previous = None
    while previous != text:
        previous = text
        cut = _marker_suffix(text)
        if cut is not None:
            text = text[:cut]
            continue
        for seg in reversed(list(_SEGMENT.finditer(text))):
            if is_marker(seg.group(1)[1:-1]):
                text = text[:seg.start()] + text[seg.end():]
                break
    return text.strip(" -–—|:,")


def display_title(title: str) -> str:
    """Human title: article restored, decorations removed, alternative title kept."""
    return uninvert_article(strip_decorations(title))


def title_year(title: str) -> int | None:
    """A bracketed release year inside a title (YouTube style), or ``None``."""
    m = re.search(r"[\(\[]\s*(1[89]\d\d|20\d\d)\s*[\)\]]", title)
    return int(m.group(1)) if m else None


__all__ = [
    "TitleForms", "display_title", "fold_accents", "is_marker", "match_key", "normalize_title",
    "numbers_of", "strip_decorations", "strip_markers", "title_forms", "title_year",
    "uninvert_article",
]
