"""A typed client for a running SONA server: BentoML's ``SyncHTTPClient``.

The client exposes every endpoint of ``serving/service.py`` as a method named after it
(``recommendations``, ``profile_update``, ``similar``, ...) taking the JSON body as a
dict. Notebooks import from ``sona`` only, so they reach the client through here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import bentoml

log = logging.getLogger(__name__)


def connect(url: str, *, api_key: str | None = None, timeout_s: float = 30.0,
            ) -> bentoml.SyncHTTPClient:
    """A ``bentoml.SyncHTTPClient`` for the server at ``url``; use it as a context manager.

    Args:
        url: server base URL, e.g. ``http://127.0.0.1:3000``.
        api_key: sent as ``Authorization: Bearer <key>`` (needed by the mutating endpoints).
        timeout_s: per-request timeout.

    Raises:
        ValueError: ``url`` is not an http(s) URL or ``timeout_s`` is not positive.
    """
    import bentoml

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    log.debug("connecting to %s", url)
    return bentoml.SyncHTTPClient(url, token=api_key, timeout=timeout_s)


__all__ = ["connect"]
