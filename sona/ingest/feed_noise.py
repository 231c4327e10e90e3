"""The broad noise model of the generated feeds and its hard negatives (issue 14).

The classic generator (:mod:`sona.ingest.feeds`, ``noise="classic"``) draws the quirks the
resolver was first built against. ``noise="broad"`` adds, on a separate random stream (the
classic draws are unchanged), the variation a person meets in real catalogues and would
still link, each drawn from a *grammar* rather than a fixed list:

==================  ==========================================================================
class               what a record's title gets
==================  ==========================================================================
bracket_alias       the alternative title is kept in brackets: "Hate (Haine, La)"
original_title      only the original-language title: "La Haine" (works that have one)
dropped_subtitle    the subtitle is dropped: "Terminator 2" (not for "Part II"-style ones)
edition             a marker of many shapes: qualifier x head x bracket/dash/colon/pipe,
                    e.g. "[Uncut Version]", " - Criterion Collection", " (4K Ultra HD)"
symbols             punctuation inside the title changed: "L.A." -> "LA", "'" -> "’" or
                    dropped, "-" -> " ", "M*A*S*H" -> "MASH"
ampersand           "&" <-> "and"
numerals            number words <-> digits, roman numerals <-> digits ("Part II" -> "Part 2")
==================  ==========================================================================

The classic classes stay: inverted_article, dropped_alt, accent, typo, upper, year_off,
missing_year, conflicting_id, duplicate. A record with none is ``clean``.

Hard negatives are extra works a person would *not* link, listed like any other work:

- ``remake``: the same title, released 3-30 years apart;
- ``sequel``: the title plus "2", "II", "Part 2"... released one year later;
- ``longer_title``: the title inside a longer one, same year ("Fargo" / "Fargo Nights");
- ``subtitled_sequel``: "Title: New Subtitle" released 2-5 years later.
"""

from __future__ import annotations

import re

import numpy as np

from sona.ingest.titles import uninvert_article

BROAD_CLASSES: tuple[str, ...] = ("bracket_alias", "original_title", "dropped_subtitle",
                                  "edition", "symbols", "ampersand", "numerals")
CLASSIC_CLASSES: tuple[str, ...] = ("inverted_article", "dropped_alt", "accent", "typo", "upper",
                                    "year_off", "missing_year", "conflicting_id", "duplicate")
LOOKALIKE_KINDS: tuple[str, ...] = ("remake", "sequel", "longer_title", "subtitled_sequel")

_QUALIFIERS = ("", "", "Director's", "Special", "Collector's", "Extended", "Ultimate", "Uncut",
               "Unrated", "Theatrical", "Criterion", "Digitally", "Deluxe", "Limited",
               "25th Anniversary", "10th Anniversary", "Definitive", "Final")
_HEADS = ("Edition", "Cut", "Version", "Collection", "Remastered", "Restored")
_FORMATS = ("Widescreen", "Fullscreen", "HD", "4K Ultra HD", "UHD", "Blu-ray", "DVD", "IMAX",
            "Remastered", "Uncut", "Full Movie", "Subtitled", "Dubbed")
_SHAPES = (" ({})", " [{}]", " - {}", ": {}", " | {}", " – {}")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")
_ROMAN = {2: "II", 3: "III", 4: "IV", 6: "VI", 7: "VII", 8: "VIII", 9: "IX"}
_SEQUELS = (" 2", " II", " Part 2", ": Part II", " 3", " III")
_LONGER = ("Nights", "Road", "Island", "Story", "Returns Home", "Girl", "Affair", "Country",
           "Blues", "Underground")
_SUBTITLES = ("The Reckoning", "Into the Fire", "A New Dawn", "Homecoming", "The Last Stand",
              "Legacy", "Revelations", "The Journey Home")
_ALT = re.compile(r"\s*\(([^()]*)\)\s*$")


def alternative_title(title: str) -> str | None:
    """The bracketed alternative title of a MovieLens title, uninverted (``"La Haine"``)."""
    m = _ALT.search(title)
    if m is None or re.fullmatch(r"\d{4}", m.group(1).strip()):
        return None
    alt = re.sub(r"^(?:a\.k\.a\.|aka)\s+", "", m.group(1).strip(), flags=re.IGNORECASE)
    return uninvert_article(alt) or None


def _plain(title: str) -> str:
    return uninvert_article(_ALT.sub("", title)) or title


def edition_marker(rng: np.random.Generator) -> str:
    """One edition/format marker drawn from qualifier x head (or format) x shape."""
    if rng.random() < 0.5:
        qual = str(rng.choice(_QUALIFIERS))
        text = f"{qual} {rng.choice(_HEADS)}".strip()
    else:
        text = str(rng.choice(_FORMATS))
    return str(rng.choice(_SHAPES)).format(text)


def _symbols(title: str, rng: np.random.Generator) -> str | None:
    options = []
    if re.search(r"\w\.\w", title) or re.search(r"\b\w\.", title):
        options.append(lambda t: t.replace(".", ""))
    if "'" in title:
        options += [lambda t: t.replace("'", ""), lambda t: t.replace("'", "’")]
    if re.search(r"\w-\w", title):
        options += [lambda t: re.sub(r"(?<=\w)-(?=\w)", " ", t),
                    lambda t: re.sub(r"(?<=\w)-(?=\w)", "", t)]
    if "*" in title:
        options.append(lambda t: t.replace("*", ""))
    if ":" in title:
        options.append(lambda t: t.replace(":", " -"))
    if not options:
        return None
    return str(options[int(rng.integers(len(options)))](title))


def _ampersand(title: str) -> str | None:
    if "&" in title:
        return re.sub(r"\s*&\s*", " and ", title)
    if re.search(r"\band\b", title, re.IGNORECASE):
        return re.sub(r"\band\b", "&", title, count=1, flags=re.IGNORECASE)
    return None


def _numerals(title: str, rng: np.random.Generator) -> str | None:
    words = title.split(" ")
    for i, w in enumerate(words):
        core = w.strip(":,.").lower()
        if core in _NUMBER_WORDS[1:]:
            words[i] = w.lower().replace(core, str(_NUMBER_WORDS.index(core)))
            return " ".join(words)
        if core.isdigit() and 1 <= int(core) <= 12 and i > 0:
            n = int(core)
            use_roman = n in _ROMAN and rng.random() < 0.5
            words[i] = w.replace(core, _ROMAN[n] if use_roman else _NUMBER_WORDS[n].title())
            return " ".join(words)
        if core.upper() in _ROMAN.values() and i > 0:
            n = {v: k for k, v in _ROMAN.items()}[core.upper()]
            words[i] = w.replace(w.strip(":,."), str(n))
            return " ".join(words)
    return None


def _drop_subtitle(title: str) -> str | None:
    plain = _plain(title)
    m = re.search(r"\s*:\s*", plain)
    if m is None or m.start() == 0:
        return None
    subtitle = plain[m.end():].strip().lower()
    if re.match(r"^(?:part|vol\.?|volume|chapter|episode)?\s*(\d+|[ivx]+)\b", subtitle):
        return None  # "Part II" subtitles name a sequel, a person keeps them
    return plain[:m.start()].strip() or None


def broad_title(title: str, rng: np.random.Generator,
                p: float) -> tuple[str, str | None, bool]:
    """Apply one broad noise class to a MovieLens title with probability ``p``.

    Returns the title to feed to the classic quirks, the class applied (``None``: none) and
    whether the classic "drop the alternative title" step must be skipped (the class already
    decided what happens to it).
    """
    if rng.random() >= p:
        return title, None, False
    eligible: list[str] = []
    if alternative_title(title):
        eligible += ["bracket_alias", "original_title"]
    if _drop_subtitle(title):
        eligible += ["dropped_subtitle", "dropped_subtitle"]
    plain = _plain(title)
    if _symbols(plain, np.random.default_rng(0)):
        eligible.append("symbols")
    if _ampersand(plain):
        eligible.append("ampersand")
    if _numerals(plain, np.random.default_rng(0)):
        eligible += ["numerals", "numerals"]
    eligible.append("edition")
    cls = str(rng.choice(eligible))
    alt = alternative_title(title)
    if cls == "bracket_alias":
        return title, cls, True
    if cls == "original_title" and alt:
        return alt, cls, True
    if cls == "dropped_subtitle":
        return _drop_subtitle(title) or title, cls, True
    if cls == "symbols":
        return _symbols(plain, rng) or plain, cls, True
    if cls == "ampersand":
        return _ampersand(plain) or plain, cls, True
    if cls == "numerals":
        return _numerals(plain, rng) or plain, cls, True
    return title + edition_marker(rng), "edition", False


def lookalike_title(title: str, kind: str, rng: np.random.Generator) -> str:
    """The title of a hard-negative work of ``kind`` derived from ``title``."""
    plain = _plain(title)
    if kind == "remake":
        return plain
    if kind == "sequel":
        return plain + str(rng.choice(_SEQUELS))
    if kind == "longer_title":
        return f"{plain} {rng.choice(_LONGER)}"
    return f"{plain}: {rng.choice(_SUBTITLES)}"


def lookalike_year(year: int, kind: str, rng: np.random.Generator) -> int:
    """Release year of a hard negative: remakes 3-30 years away, sequels 1, subtitled 2-5."""
    if kind == "remake":
        gap = int(rng.integers(3, 31))
        return year - gap if year + gap > 2026 or rng.random() < 0.3 else year + gap
    if kind == "sequel":
        return year + 1
    if kind == "longer_title":
        return year
    return year + int(rng.integers(2, 6))


__all__ = [
    "BROAD_CLASSES", "CLASSIC_CLASSES", "LOOKALIKE_KINDS", "alternative_title", "broad_title",
    "edition_marker", "lookalike_title", "lookalike_year",
]
