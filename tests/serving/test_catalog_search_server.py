"""The catalog is search's item space (issue 11), over the real BentoML server: a title
created through the admin API is found by ``POST /api/v1/search`` without a restart, and a
deleted one disappears. The server's catalog starts empty and is seeded from ML-100K, so
MovieLens ids are the served ids."""

from __future__ import annotations

import time
from typing import Any

import pytest
from serving_fixtures import RunningServer, call

CONTENT = "/api/v1/admin/catalog/content"
SEARCH = "/api/v1/search"


def _ids(server: RunningServer, query: str) -> list[str]:
    status, body = call("POST", server.url + SEARCH, {"query": query, "page_size": 10})
    assert status == 200, body
    return [r["content"]["id"] for r in body["results"]]


def _within(seconds: float, check: Any) -> bool:
    """Whether ``check()`` turns true within ``seconds`` (polled; no timing assertion)."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.mark.slow
def test_admin_write_reaches_search_and_delete_removes_it(server: RunningServer) -> None:
    assert _ids(server, "star wars")[0] == "50"  # seeded: the MovieLens id is the catalog id
    title = "Zorblax and the Quantum Lighthouse"
    status, made = call("POST", server.url + CONTENT, {
        "title": title, "content_type": "movie", "platform": "netflix",
        "platform_content_id": "zq-1", "overview": "A lighthouse keeper bends time.",
        "release_year": 2021, "genres": ["Sci-Fi"]}, server.admin_key)
    assert status == 201, made
    new_id = made["id"]
    assert _within(2.0, lambda: _ids(server, "zorblax quantum lighthouse")[:1] == [new_id])
    status, ac = call("GET", server.url + SEARCH + "/autocomplete?q=zorbl")
    assert status == 200 and any(title in str(s) for s in ac["suggestions"]), ac

    status, patched = call("PATCH", f"{server.url}{CONTENT}/{new_id}",
                           {"title": "Quibblewick Harbour"}, server.admin_key)
    assert status == 200, patched
    assert _within(2.0, lambda: _ids(server, "quibblewick harbour")[:1] == [new_id])

    assert call("DELETE", f"{server.url}{CONTENT}/{new_id}", key=server.admin_key)[0] == 200
    assert _within(2.0, lambda: new_id not in _ids(server, "quibblewick harbour"))
    assert new_id not in _ids(server, "zorblax quantum lighthouse")
