"""Title normalisation for entity resolution and display.

SPEC §4 rule 3 normalises a title by lower-casing, keeping alphanumerics and spaces and
collapsing whitespace (:func:`normalize_title`). Platform feeds differ in more than case, so
the matcher compares :func:`match_key` instead (**NEW**), which also

- folds accents (``"Amélie"`` -> ``"amelie"``),
- restores a trailing article (``"Matrix, The"`` -> ``"the matrix"``, also Le/La/Les/Il/Das...)
  and then drops the leading article, so ``"Matrix"`` == ``"The Matrix"``,
- removes edition/format markers (``": Director's Cut"``, ``"(Remastered)"``, ``"[HD]"``),
  a parenthesised release year and YouTube decorations (``"| Full Movie"``),
- removes a parenthesised alternative title (``"Seven (Se7en)"`` -> ``"seven"``).

Colon subtitles that are part of the title (``"Star Trek: First Contact"``) are kept, so
sequels stay apart.
"""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = ("the", "a", "an", "le", "la", "les", "l'", "il", "el", "lo", "los", "las", "gli",
             "das", "der", "die", "un", "une", "ein", "eine", "det", "den")
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+?),\s*(?P<art>" + "|".join(re.escape(a) for a in _ARTICLES) + r")"
    r"(?P<rest>\s*(\(.*\))?\s*)$", re.IGNORECASE)
_EDITION = re.compile(
    r"\s*(?:[:\-–|]\s*|\(|\[)\s*(?:the\s+)?(?:director'?s\s+cut|extended(?:\s+(?:edition|cut))?|"
    r"special\s+edition|remastered|(?:\d+(?:th|st|nd|rd)\s+)?anniversary(?:\s+edition)?|"
    r"unrated(?:\s+(?:edition|cut))?|theatrical(?:\s+cut)?|4k(?:\s+uhd)?|uhd|hd|sd|"
    r"full\s+movie|official\s+full\s+movie|free\s+full\s+movie|subtitled|dubbed|"
    r"original\s+version|collector'?s\s+edition|restored(?:\s+version)?)\s*[\)\]]?",
    re.IGNORECASE)
_YEAR_PAREN = re.compile(r"\s*[\(\[]\s*(1[89]\d\d|20\d\d)\s*[\)\]]")
_PAREN = re.compile(r"\s*\([^()]*\)")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+")  # English only: "Die Hard" keeps "die"


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


def strip_decorations(title: str) -> str:
    """Remove edition/format markers and a parenthesised year (display-safe)."""
    previous = None
    text = title
    while previous != text:  # markers can stack: "Alien (Director's Cut) [HD]"
        previous = text
        text = _EDITION.sub("", text)
        text = _YEAR_PAREN.sub("", text)
    return text.strip(" -–|:")


def display_title(title: str) -> str:
    """Human title: article restored, decorations removed, alternative title kept."""
    return uninvert_article(strip_decorations(title))


def match_key(title: str) -> str:
    """The comparison key of rule 3 (see module docstring); may be ``""`` for junk titles."""
    text = fold_accents(strip_decorations(title))
    text = uninvert_article(text)
    core = _PAREN.sub("", text).strip()
    text = core or text  # a title that is only a parenthesis keeps it
    key = normalize_title(text)
    stripped = _LEADING_ARTICLE.sub("", key)
    return stripped or key


def title_year(title: str) -> int | None:
    """A parenthesised release year inside a title (YouTube style), or ``None``."""
    m = _YEAR_PAREN.search(title)
    return int(m.group(1)) if m else None


__all__ = [
    "display_title", "fold_accents", "match_key", "normalize_title", "strip_decorations",
    "title_year", "uninvert_article",
]
