"""The normaliser contract and the parsing helpers every platform module shares.

A platform module subclasses :class:`Normalizer`, sets ``platform`` and implements
``_parse(data, fetched_at)`` (the platform's raw JSON -> :class:`CanonicalRecord`); deep
links come from the platform's templates (:mod:`sona.catalog.deeplinks`), the same ones the
served "where to watch" fills missing links from. :meth:`Normalizer.normalize` turns any missing
or malformed field into a :class:`~sona.errors.DataError` that names the platform, the
record and the field, so one bad record in a feed is reported precisely.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast

from sona.catalog import deeplinks
from sona.catalog.deeplinks import DeepLinks
from sona.catalog.schema import MaturityRating
from sona.errors import DataError
from sona.genres import map_genres
from sona.ingest.records import CanonicalRecord, RawRecord

log = logging.getLogger(__name__)

_MISSING = object()
_IMDB = re.compile(r"^(?:tt)?(\d{5,9})$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_HUMAN_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$", re.IGNORECASE)
_RATINGS = {
    "G": "G", "PG": "PG", "PG13": "PG13", "R": "R", "NC17": "NC17", "NR": "NR", "UNRATED": "NR",
    "NOTRATED": "NR", "TVY": "TVY", "TVY7": "TVY7", "TVG": "TVG", "TVPG": "TVPG",
    "TV14": "TV14", "TVMA": "TVMA",
}


class FieldError(Exception):
    """Raised by the helpers; :meth:`Normalizer.normalize` adds the record context."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class Normalizer(ABC):
    """Parses one platform's raw records into canonical records."""

    platform: ClassVar[str]

    def normalize(self, raw: RawRecord) -> CanonicalRecord:
        """Canonical form of ``raw``.

        Raises:
            DataError: wrong platform, or a missing/malformed field (named with the record id).
        """
        if raw.platform != self.platform:
            raise DataError(f"{self.platform} normaliser got a {raw.platform} record {raw.id!r}")
        try:
            record = self._parse(raw.data, raw.fetched_at)
        except FieldError as exc:
            raise DataError(f"{self.platform} record {raw.id!r}: {exc.problem}",
                            column=exc.field) from exc
        except (ValueError, TypeError) as exc:  # pydantic validation of the parsed values
            first = str(exc).strip().splitlines()
            raise DataError(f"{self.platform} record {raw.id!r} is invalid: "
                            f"{' '.join(first[:3])}") from exc
        record.deep_links = self.deep_links(record.platform_content_id, record.title)
        return record

    @abstractmethod
    def _parse(self, data: dict[str, Any], fetched_at: datetime) -> CanonicalRecord:
        """Platform JSON -> canonical record (deep links are added by :meth:`normalize`)."""

    def deep_links(self, platform_content_id: str, title: str) -> DeepLinks:
        """Mobile-app, web and TV-app links that open this title (the platform's templates)."""
        return deeplinks.deep_links(self.platform, platform_content_id, title)


# ---- helpers ---------------------------------------------------------------------------
def get(data: Any, path: str, default: Any = _MISSING) -> Any:
    """Value at a dotted ``path`` (``"a.b.0.c"``); ``default`` when absent, else FieldError."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            if default is _MISSING:
                raise FieldError(path, "missing required field")
            return default
    if node is None and default is _MISSING:
        raise FieldError(path, "required field is null")
    return default if node is None else node


def text(data: Any, path: str, *, required: bool = False) -> str | None:
    """A non-empty stripped string, or ``None`` (FieldError when required or not a string)."""
    value = get(data, path) if required else get(data, path, None)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise FieldError(path, f"expected a string, got {type(value).__name__}")
    out = str(value).strip()
    if not out and required:
        raise FieldError(path, "required field is empty")
    return out or None


def integer(data: Any, path: str) -> int | None:
    """An optional integer (numeric strings accepted)."""
    value = get(data, path, None)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FieldError(path, f"expected an integer, got {value!r}") from None


def number(data: Any, path: str) -> float | None:
    """An optional float (numeric strings accepted)."""
    value = get(data, path, None)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FieldError(path, f"expected a number, got {value!r}") from None


def timestamp(data: Any, path: str) -> datetime | None:
    """An optional ISO-8601 date or datetime as an aware UTC datetime."""
    value = get(data, path, None)
    if value is None or value == "":
        return None
    if isinstance(value, int | float):  # epoch seconds or milliseconds
        secs = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(secs, UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(path, f"expected an ISO-8601 date, got {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def year_of(data: Any, path: str) -> int | None:
    """Release year from an int/str year or an ISO date (``"1999-03-31"``)."""
    value = get(data, path, None)
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}", value.strip()):
        return int(value)
    try:
        return date.fromisoformat(str(value)[:10]).year
    except ValueError:
        raise FieldError(path, f"expected a year or date, got {value!r}") from None


def minutes_from_seconds(seconds: float | None) -> int | None:
    """Runtime minutes from seconds, rounded."""
    return None if seconds is None else round(seconds / 60)


def iso_duration_minutes(data: Any, path: str) -> int | None:
    """Minutes from an ISO-8601 duration such as ``"PT1H36M12S"``."""
    value = text(data, path)
    if value is None:
        return None
    m = _ISO_DURATION.match(value)
    if not m or value in ("P", "PT"):
        raise FieldError(path, f"expected an ISO-8601 duration, got {value!r}")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return round(d * 1440 + h * 60 + mi + s / 60)


def human_duration_minutes(data: Any, path: str) -> int | None:
    """Minutes from ``"1h 35m"`` / ``"95 min"`` strings."""
    value = text(data, path)
    if value is None:
        return None
    m = _HUMAN_DURATION.match(value)
    if not m or not any(m.groups()):
        raise FieldError(path, f"expected a duration like '1h 35m', got {value!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def maturity(value: str | None) -> MaturityRating | None:
    """Canonical maturity rating (``"PG-13"`` -> ``"PG13"``, ``"tv-ma"`` -> ``"TVMA"``)."""
    if value is None:
        return None
    key = re.sub(r"[^A-Z0-9]", "", value.upper())
    if key not in _RATINGS:
        log.debug("unknown maturity rating %r dropped", value)
        return None
    return cast(MaturityRating, _RATINGS[key])


def imdb_id(value: Any) -> str | None:
    """``"tt0133093"`` from ``"tt0133093"``, ``"133093"`` or ``133093``; ``None`` if malformed."""
    if value is None or value == "":
        return None
    m = _IMDB.match(str(value).strip())
    if not m:
        log.debug("malformed IMDb id %r dropped", value)
        return None
    return f"tt{int(m.group(1)):07d}"


def external_ids(*, eidr: Any = None, imdb: Any = None, tmdb: Any = None) -> dict[str, str]:
    """The canonical ``external_ids`` mapping with validated, present ids only."""
    out: dict[str, str] = {}
    if eidr and re.fullmatch(r"10\.5240/[0-9A-F]{4}(-[0-9A-F]{4}){4}-[0-9A-Z]", str(eidr)):
        out["eidr_id"] = str(eidr)
    elif eidr:
        log.debug("malformed EIDR id %r dropped", eidr)
    if (imdb_value := imdb_id(imdb)) is not None:
        out["imdb_id"] = imdb_value
    if tmdb not in (None, "") and str(tmdb).strip().isdigit():
        out["tmdb_id"] = str(int(str(tmdb).strip()))
    return out


def genres_from(labels: list[str]) -> list[str]:
    """Canonical genres of the platform's labels via the shared mapping."""
    return map_genres(labels)


def as_list(value: Any, path: str) -> list[Any]:
    """``value`` when it is a list (``None`` -> ``[]``), else FieldError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(path, f"expected a list, got {type(value).__name__}")
    return value


__all__ = [
    "FieldError", "Normalizer", "as_list", "external_ids", "genres_from", "get",
    "human_duration_minutes", "imdb_id", "integer", "iso_duration_minutes", "maturity",
    "minutes_from_seconds", "number", "text", "timestamp", "year_of",
]
