"""Exceptions raised across SONA.

Each error names what is wrong precisely enough that the user can fix it without a
traceback: the CLI prints ``str(error)`` on one line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class SonaError(Exception):
    """Base class of every error SONA raises on purpose."""


class RequestError(SonaError):
    """A request a SONA service cannot serve: HTTP ``status``, machine ``code``, a
    ``message`` naming the problem and the offending ``fields`` (the sync and playback
    services raise subclasses; serving turns any of them into the same 4xx JSON body)."""

    def __init__(self, status: int, code: str, message: str,
                 fields: Sequence[str] = ()) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        super().__init__(message)


class DataError(SonaError, ValueError):
    """Input data is malformed: names the file, the column and the first offending row."""

    def __init__(
        self,
        message: str,
        *,
        path: Any = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.path = path
        self.column = column
        self.row = row
        parts = []
        if path is not None:
            parts.append(f"file {path}")
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}")
        where = f" ({', '.join(parts)})" if parts else ""
        super().__init__(f"{message}{where}")


class UnknownIdError(SonaError, KeyError):
    """Ids that the model or index was not built with; the message lists (up to 10 of) them."""

    def __init__(self, kind: str, ids: Iterable[Any]) -> None:
        self.kind = kind
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:10])
        more = f" and {len(self.ids) - 10} more" if len(self.ids) > 10 else ""
        super().__init__(f"unknown {kind} id(s): {shown}{more}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NotFittedError(SonaError, RuntimeError):
    """A method that needs learned state was called before ``fit``."""


class ConfigError(SonaError, ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""
