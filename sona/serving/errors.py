"""The one error type serving handlers raise; the BentoML service maps it to an HTTP reply.

Handlers in ``sona/serving/*_api.py`` are plain Python (no bentoml import). When a request
cannot be served they raise :class:`ApiError`; ``serving/service.py`` turns it into a JSON
body ``{"error": ..., "message": ..., **details}`` with ``status`` as the HTTP status code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sona.errors import RequestError, SonaError

T = TypeVar("T")


class ApiError(SonaError):
    """An HTTP-level failure: ``status`` code, short machine ``error`` slug, human ``message``.

    Args:
        status: HTTP status code (400-599).
        error: stable machine-readable slug, e.g. ``"not_found"``, ``"invalid_signature"``.
        message: one line a client can show.
        details: extra JSON-serialisable fields merged into the response body.
    """

    def __init__(self, status: int, error: str, message: str, **details: Any) -> None:
        if not 400 <= int(status) <= 599:
            raise ValueError(f"ApiError status must be 400-599, got {status}")
        self.status = int(status)
        self.error = error
        self.message = message
        self.details = details
        super().__init__(f"{status} {error}: {message}")

    def to_body(self) -> dict[str, Any]:
        """The JSON response body: ``{"error", "message", **details}``."""
        return {"error": self.error, "message": self.message, **self.details}


def service_call(call: Callable[[], T]) -> T:
    """Run a service call (sync, playback), turning its :class:`~sona.errors.RequestError`
    into the matching :class:`ApiError` (same status, code and fields)."""
    try:
        return call()
    except RequestError as exc:
        raise ApiError(exc.status, exc.code, exc.message, fields=exc.fields) from exc


__all__ = ["ApiError", "service_call"]
