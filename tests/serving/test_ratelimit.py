"""Token buckets (memory and Redis) and the access middleware's 401/429 decisions (issue 13).

The Redis path runs against a real ``redis-server`` when one is installed (started here on
a free loopback port), else against ``fakeredis`` with the same Lua script.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from sona.db import sqlite_url
from sona.serving.access import READ_ROUTES, AccessControl, needs_credentials, open_reason
from sona.serving.auth import KeyStore
from sona.serving.identity import Authenticator
from sona.serving.ratelimit import (
    AuthRouteLimits,
    Limit,
    MemoryBuckets,
    RateLimitConfig,
    RedisBuckets,
    TierLimits,
    validate_rate_limits,
)
from sona.serving.tokens import AuthConfig, TokenService
from sona.serving.users import UserStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    limits = (Limit(6, 60.0),)  # 6 a minute: one token every 10 s
    assert [buckets.take_now("k", limits) for _ in range(6)] == [0.0] * 6
    assert buckets.take_now("k", limits) == pytest.approx(10.0)
    clock.now += 4.0
    assert buckets.take_now("k", limits) == pytest.approx(6.0)  # refused: nothing taken
    clock.now += 6.0
    assert buckets.take_now("k", limits) == 0.0
    assert buckets.take_now("other", limits) == 0.0  # buckets are per key


def test_every_limit_of_a_tier_must_allow() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    limits = (Limit(3, 60.0), Limit(4, 3600.0))  # 3 a minute and 4 an hour
    assert [buckets.take_now("u", limits) for _ in range(3)] == [0.0] * 3
    assert buckets.take_now("u", limits) == pytest.approx(20.0)  # the minute bucket
    clock.now += 60.0
    assert buckets.take_now("u", limits) == 0.0  # the 4th of the hour
    wait = buckets.take_now("u", limits)
    assert wait == pytest.approx(900.0 - 60.0, rel=1e-6)  # the hour bucket: 1 per 900 s


def test_memory_stays_bounded_under_many_clients() -> None:
    clock = Clock()
    buckets = MemoryBuckets(max_keys=100, clock=clock)
    limits = (Limit(10, 1.0),)
    for i in range(1000):
        buckets.take_now(f"ip:{i}", limits)
        clock.now += 0.01
    assert len(buckets._state) <= 100


def test_limits_are_validated() -> None:
    validate_rate_limits(RateLimitConfig())
    bad = RateLimitConfig(tiers=TierLimits(anonymous=(Limit(0, 60.0),)))
    with pytest.raises(ValueError, match=r"rate_limits.tiers.anonymous\[0\]"):
        validate_rate_limits(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A real redis-server on loopback when installed, else None (fakeredis is used)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _redis_buckets(url: str | None, prefix: str) -> RedisBuckets:
    if url is not None:
        return RedisBuckets(url, prefix=prefix)
    import fakeredis

    return RedisBuckets(None, prefix=prefix, client=fakeredis.FakeAsyncRedis(server=_FAKE))


_FAKE: Any = None


def test_redis_buckets_share_state_between_processes(redis_url: str | None) -> None:
    global _FAKE
    if redis_url is None:
        import fakeredis

        _FAKE = fakeredis.FakeServer()
    prefix = f"test:{time.time_ns()}:"
    limits = (Limit(3, 3600.0),)  # refills one token per 1200 s: no refill during the test

    async def run() -> tuple[list[float], float, list[str]]:
        one, two = _redis_buckets(redis_url, prefix), _redis_buckets(redis_url, prefix)
        taken = [await one.take("key:1", limits), await two.take("key:1", limits),
                 await one.take("key:1", limits)]
        refused = await two.take("key:1", limits)  # the 4th, from the "other process"
        keys = [k.decode() for k in await one.client.keys(prefix + "*")]
        ttl = await one.client.pttl(keys[0])
        assert 0 < ttl <= 3 * 1200 * 1000 + 1000  # expires once the bucket is full again
        await one.close()
        await two.close()
        return taken, refused, keys

    taken, refused, keys = asyncio.run(run())
    assert taken == [0.0, 0.0, 0.0]
    assert 1100.0 < refused <= 1200.0
    assert keys == [prefix + "key:1:0"]


def test_unreachable_redis_fails_open() -> None:
    buckets = RedisBuckets(f"redis://127.0.0.1:{_free_port()}/0")
    assert asyncio.run(buckets.take("k", (Limit(1, 60.0),))) == 0.0


# --- the middleware -------------------------------------------------------------------------


def test_policy_open_routes_and_public_reads() -> None:
    assert needs_credentials("POST", "/api/v1/profile/update", public_reads=True)
    assert needs_credentials("POST", "/api/v1/search/click", public_reads=True)
    assert needs_credentials("DELETE", "/api/v1/experiments/x", public_reads=True)
    assert not needs_credentials("POST", "/api/v1/recommendations", public_reads=True)
    assert needs_credentials("POST", "/api/v1/recommendations", public_reads=False)
    assert not needs_credentials("GET", "/api/v1/search/autocomplete", public_reads=True)
    assert needs_credentials("GET", "/api/v1/search/autocomplete", public_reads=False)
    assert not needs_credentials("GET", "/health", public_reads=False)
    assert not needs_credentials("POST", "/api/v1/auth/login", public_reads=False)
    assert not needs_credentials("POST", "/api/v1/webhooks/netflix", public_reads=False)
    assert needs_credentials("POST", "/api/v1/webhooks/register", public_reads=True)
    assert needs_credentials("POST", "/api/v1/webhooks/process", public_reads=True)
    assert open_reason("POST", "/api/v1/auth/logout") is None
    assert all(p.startswith("/api/v1/") for p in READ_ROUTES)


@pytest.fixture()
def authn(tmp_path: Path) -> Authenticator:
    url = sqlite_url(tmp_path / "auth.db")
    users = UserStore(url)
    return Authenticator(KeyStore(url), TokenService(url, users, AuthConfig()))


def _client(auth: Authenticator, **options: Any) -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "method": request.method})

    inner = Starlette(routes=[
        Route("/api/v1/profile/update", echo, methods=["POST"]),
        Route("/api/v1/recommendations", echo, methods=["POST"]),
        Route("/api/v1/auth/login", echo, methods=["POST"]),
        Route("/health", echo, methods=["GET"]),
    ])
    return TestClient(AccessControl(inner, get_auth=lambda: auth, **options))


def test_middleware_401_without_or_with_bad_credentials(authn: Authenticator) -> None:
    client = _client(authn)
    out = client.post("/api/v1/profile/update", json={})
    assert out.status_code == 401 and out.json()["error"] == "unauthorized"
    assert "needs credentials" in out.json()["message"] and out.headers["www-authenticate"]
    bad = client.post("/api/v1/recommendations", json={}, headers={"X-API-Key": "sk_nope"})
    assert bad.status_code == 401  # a bad credential is refused even on a public read
    assert client.post("/api/v1/recommendations", json={}).status_code == 200
    key = authn.keys.create(["read"])[1]
    assert client.post("/api/v1/profile/update", json={},
                       headers={"Authorization": f"Bearer {key}"}).status_code == 200
    strict = _client(authn, public_reads=False)
    assert strict.post("/api/v1/recommendations", json={}).status_code == 401
    assert strict.get("/health").status_code == 200


def test_undeclared_methods_reach_the_router(authn: Authenticator) -> None:
    declared = [("POST", "/api/v1/profile/update"), ("POST", "/api/v1/recommendations")]
    client = _client(authn, declared=lambda: declared)
    assert client.post("/api/v1/profile/update", json={}).status_code == 401
    assert client.delete("/api/v1/profile/update").status_code == 405  # not a 401
    assert client.post("/api/v1/nowhere", json={}).status_code == 404


def test_middleware_429_per_ip_per_key_and_per_route(authn: Authenticator) -> None:
    limits = RateLimitConfig(tiers=TierLimits(anonymous=(Limit(2, 60.0),),
                                              service=(Limit(3, 60.0),)),
                             auth_routes=AuthRouteLimits(login=(Limit(1, 60.0),)))
    client = _client(authn, rate_limits=limits)
    codes = [client.post("/api/v1/recommendations", json={}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post("/api/v1/recommendations", json={})
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert refused.headers["retry-after"] == "30" and refused.json()["retry_after_s"] == 30
    assert client.get("/health").status_code == 200  # probes are never counted
    key = authn.keys.create(["write"])[1]  # a key has its own bucket and tier
    headers = {"X-API-Key": key}
    codes = [client.post("/api/v1/profile/update", json={}, headers=headers).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    login_only = RateLimitConfig(auth_routes=AuthRouteLimits(login=(Limit(1, 60.0),)))
    fresh = _client(authn, rate_limits=login_only)  # login: its own per-IP bucket as well
    assert [fresh.post("/api/v1/auth/login", json={}).status_code for _ in range(2)] == [
        200, 429]
    assert "login" in fresh.post("/api/v1/auth/login", json={}).json()["tier"]


def test_disabled_limits_never_refuse(authn: Authenticator) -> None:
    limits = RateLimitConfig(enabled=False, tiers=TierLimits(anonymous=(Limit(1, 60.0),)))
    client = _client(authn, rate_limits=limits)
    assert {client.post("/api/v1/recommendations", json={}).status_code
            for _ in range(5)} == {200}


def test_memory_buckets_with_several_workers_are_announced_as_per_worker(
        caplog: pytest.LogCaptureFixture) -> None:
    from sona.serving.ratelimit import warn_per_worker_limits

    with caplog.at_level("WARNING", logger="sona.serving.ratelimit"):
        assert not warn_per_worker_limits(RateLimitConfig(), 1)
        assert not warn_per_worker_limits(RateLimitConfig(redis_url="redis://x:6379/0"), 2)
        assert not warn_per_worker_limits(RateLimitConfig(enabled=False), 2)
        assert caplog.records == []
        assert warn_per_worker_limits(RateLimitConfig(), 2)
    assert len(caplog.records) == 1 and "up to 2x" in caplog.records[0].getMessage()
    # 0 is one worker per core (ServingConfig.workers)
    assert warn_per_worker_limits(RateLimitConfig(), 0) == ((os.cpu_count() or 1) > 1)
