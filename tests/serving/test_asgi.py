"""RequestTimeout, the service's replacement of BentoML's timeout middleware (issue 12)."""

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from sona.serving.asgi import RequestTimeout


async def _fast(_: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _slow(_: Request) -> JSONResponse:
    await asyncio.sleep(5)
    return JSONResponse({"ok": True})


async def _pending_timers(_: Request) -> JSONResponse:
    loop = asyncio.get_running_loop()
    live = [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
    return JSONResponse({"live": len(live)})


def _client(timeout: float) -> TestClient:
    app = Starlette(routes=[Route("/fast", _fast), Route("/slow", _slow),
                            Route("/timers", _pending_timers)])
    return TestClient(RequestTimeout(app, timeout=timeout))


def test_fast_requests_pass_through_and_leave_no_live_timer():
    with _client(60.0) as client:
        for _ in range(20):
            assert client.get("/fast").json() == {"ok": True}
        # only the asking request's own timer is live; BentoML's middleware left one 60 s
        # timer per finished request alive (21 here), the cause of full-GC pauses
        assert client.get("/timers").json()["live"] == 1


def test_a_slow_request_is_a_504():
    with _client(0.05) as client:
        resp = client.get("/slow")
    assert resp.status_code == 504
    assert resp.json()["error"] == "timeout"
