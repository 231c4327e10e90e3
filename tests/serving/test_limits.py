"""Request limits over HTTP against a real server (issue 13): 413 before the body is read,
415 for non-JSON bodies, 405 with a JSON body."""

from __future__ import annotations

import json
import socket

from serving_fixtures import RunningServer, call
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from sona.serving.limits import RequestLimits

#: ServingConfig.max_body_bytes default
LIMIT = 1_048_576


def _raw(server: RunningServer, head: str, body: bytes = b"") -> tuple[int, dict, str]:
    """Send raw bytes on one connection; returns (status, JSON body, raw head)."""
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head_out, _, payload = data.partition(b"\r\n\r\n")
    status = int(head_out.split(b" ", 2)[1])
    return status, json.loads(payload), head_out.decode("latin-1")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_50_mb_body_is_refused_without_being_read(server: RunningServer) -> None:
    # only the first 64 KiB of the announced 50 MB are ever sent: the 413 must come first
    head = ("POST /api/v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {50 * 2**20}\r\n\r\n")
    status, body, _ = _raw(server, head, b"[" + b"1," * 32768)
    assert status == 413
    assert body["error"] == "payload_too_large" and body["max_body_bytes"] == LIMIT


def test_a_chunked_body_over_the_limit_is_refused(server: RunningServer) -> None:
    chunk = b"x" * 65536
    stream = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    head = ("POST /api/v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, body, _ = _raw(server, head, stream)
    assert status == 413 and body["max_body_bytes"] == LIMIT


def test_a_body_under_the_limit_reaches_the_route(server: RunningServer) -> None:
    status, body = call("POST", f"{server.url}/api/v1/recommendations",
                        {"user_id": "1000", "limit": 5})
    assert status == 200 and len(body["recommendations"]) == 5
    # a chunked body under the limit is replayed to the route unchanged
    payload = json.dumps({"user_id": "1000", "limit": 3}).encode()
    head = ("POST /api/v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, body, _ = _raw(server, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
    assert status == 200 and len(body["recommendations"]) == 3


def test_non_json_bodies_answer_415(server: RunningServer) -> None:
    for content_type in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded"):
        status, body = call("POST", f"{server.url}/api/v1/recommendations", raw=b"user_id=1",
                            key=server.admin_key, headers={"content-type": content_type})
        assert status == 415, content_type
        assert body["error"] == "unsupported_media_type"
        assert body["accepted"] == ["application/json"]
    status, _ = call("POST", f"{server.url}/api/v1/recommendations", {"user_id": "1000"},
                     headers={"content-type": "application/json; charset=utf-8"})
    assert status == 200


def test_unknown_methods_answer_405_json(server: RunningServer) -> None:
    for method, path in (("DELETE", "/api/v1/recommendations"),
                         ("PATCH", "/api/v1/search"), ("PUT", "/api/v1/events")):
        status, body = call(method, f"{server.url}{path}")
        assert status == 405, (method, path)
        assert body["error"] == "method_not_allowed" and "POST" in body["allowed"]


def test_allow_lists_every_method_declared_on_the_path() -> None:
    # issue 13 (schemathesis): OPTIONS /api/v1/experiments answered `Allow: POST`, the
    # BentoML router's own methods, while a mounted app answers GET on the same path
    async def post_only(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 405,
                    "headers": [(b"allow", b"POST"), (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Method Not Allowed"})

    table = [("POST", "/api/v1/experiments"), ("GET", "/api/v1/experiments"),
             ("GET", "/api/v1/webhooks/stats"), ("POST", "/api/v1/webhooks/{platform}")]
    client = TestClient(RequestLimits(post_only, LIMIT, declared=lambda: table))
    resp = client.options("/api/v1/experiments")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, HEAD, POST"
    assert resp.json()["allowed"] == ["GET", "HEAD", "POST"]
    # a literal path is its own resource, not the template it also fits
    assert client.options("/api/v1/webhooks/stats").headers["allow"] == "GET, HEAD"
    assert client.options("/api/v1/webhooks/netflix").headers["allow"] == "POST"
