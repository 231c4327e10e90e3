"""Plain-urllib JSON requests for tests that talk to a real server on 127.0.0.1.

One helper for every test package (serving, sync, console): status and parsed body, errors
included, so a test asserts on a 4xx body as easily as on a 200.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(method: str, url: str, body: Any = None, key: str | None = None, *,
         raw: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> tuple[int, Any]:
    """One JSON request; returns ``(status, parsed body or None)``.

    Args:
        method, url: the request.
        body: JSON-encoded unless ``raw`` gives the bytes to send.
        key: an API key sent as ``Authorization: Bearer``.
        headers: extra headers (override the JSON content type).
        timeout: seconds.
    """
    sent = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        return exc.code, json.loads(payload) if payload else None


def post(url: str, body: Any, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    """POST JSON (see :func:`call`)."""
    return call("POST", url, body, raw=raw, headers=headers, timeout=30.0)


def get(url: str) -> tuple[int, Any]:
    """GET; returns ``(status, body)``, the body parsed as JSON when it is JSON, else text."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


__all__ = ["call", "get", "post"]
