"""``sona.serving.connect``: the BentoML client against the real session server."""

from __future__ import annotations

import pytest
from serving_fixtures import RunningServer

from sona.serving import connect

NOW = "2024-05-01T20:00:00Z"


def test_connect_calls_read_and_write_endpoints(server: RunningServer) -> None:
    with connect(server.url) as client:
        out = client.recommendations({"user_id": 1000, "limit": 3})
        assert out["user_id"] == "1000" and len(out["recommendations"]) == 3
    with connect(server.url, api_key=server.write_key) as client:
        body = client.profile_update({"user_id": "client-user", "viewing_events": [
            {"content_id": 5000, "timestamp": NOW, "completion_rate": 0.9}]})
        assert body["status"] == "updated" and body["events_processed"] == 1


@pytest.mark.parametrize(("url", "timeout", "word"), [
    ("127.0.0.1:3000", 30.0, "url"), ("http://127.0.0.1:3000", 0.0, "timeout_s")])
def test_connect_rejects_bad_arguments(url: str, timeout: float, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        connect(url, timeout_s=timeout)
