"""Users, tokens, 401/403/429 over a real ``bentoml serve`` (issue 13).

One server for the module with ``auth.public_reads: false`` (the strict setting): the
route walk asserts that every route of the real route table except the justified open ones
(:data:`sona.serving.access.OPEN_ROUTES`) refuses a request without credentials. The
default (public reads) is what every other server test runs with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from serving_fixtures import Bundles, RunningServer, call, write_config

from sona.db import sqlite_url
from sona.docs import service_class
from sona.serving.access import open_reason
from sona.serving.auth import KeyStore
from sona.serving.process import ServerProcess
from sona.serving.routing import service_operations
from sona.serving.users import UserStore

pytestmark = pytest.mark.slow  # a server of its own: ~20 s

AUTH = "/api/v1/auth"
PASSWORD = "a long password"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[RunningServer]:
    work = tmp_path_factory.mktemp("auth-server")
    config = write_config(
        work / "serving.yaml", bundles.models_dir,
        auth={"public_reads": False},
        # SPEC's free tier (30 a minute) stays; sign-ups and logins are loosened for the
        # flows below, except the last test, which exhausts the login bucket on purpose
        rate_limits={"auth_routes": {"register": [{"requests": 100, "per_s": 3600}],
                                     "login": [{"requests": 12, "per_s": 60}]}})
    keys = KeyStore(sqlite_url(work / "sona.db"))
    admin = keys.create(["admin"], name="auth-admin")[1]
    write = keys.create(["write"], name="auth-write")[1]
    read = keys.create(["read"], name="auth-read")[1]
    UserStore(sqlite_url(work / "sona.db")).register("root", PASSWORD, role="admin")
    with ServerProcess(config) as proc:
        yield RunningServer(proc, proc.url, admin, write, read, config)


def _concrete(path: str) -> str:
    return re.sub(r"{([^}:]+)(:[^}]+)?}", "x", path)


def test_every_route_without_credentials_is_401_except_the_open_ones(
        live: RunningServer) -> None:
    """Walks the service's real route table (its BentoML APIs and mounted apps)."""
    checked, skipped = [], []
    for declared in service_operations(service_class()):
        method, path = declared.operation.method, _concrete(declared.path)
        if open_reason(method, path) is not None:
            skipped.append((method, path))
            continue
        body = None if method == "GET" else {}
        status, out = call(method, live.url + path, body)
        assert status == 401, (method, path, status, out)
        assert out["error"] == "unauthorized" and "credentials" in out["message"]
        status, _ = call(method, live.url + path, body, key="sk_" + "0" * 32)
        assert status == 401, (method, path, "with an unknown key")
        checked.append((method, path))
    mutating = [c for c in checked if c[0] in {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(mutating) >= 30 and ("POST", "/api/v1/recommendations") in mutating
    assert ("POST", "/api/v1/search/click") in mutating
    assert {m for m, _ in skipped} <= {"GET", "POST"}
    assert ("POST", f"{AUTH}/login") in skipped and ("GET", "/health") in skipped


def test_register_login_refresh_reuse_logout(live: RunningServer) -> None:
    status, user = call("POST", f"{live.url}{AUTH}/register",
                        {"username": "kim", "password": PASSWORD})
    assert status == 201 and user["role"] == "free_user" and user["scopes"] == ["read"]
    assert call("POST", f"{live.url}{AUTH}/register",
                {"username": "kim", "password": PASSWORD})[0] == 409
    status, bad = call("POST", f"{live.url}{AUTH}/register", {"username": "k", "password": "x"})
    assert status == 400 and set(bad["fields"]) == {"username", "password"}
    status, bad = call("POST", f"{live.url}{AUTH}/login", {"username": "kim", "password": "no"})
    assert status == 401 and bad["error"] == "unauthorized"

    status, first = call("POST", f"{live.url}{AUTH}/login",
                         {"username": "kim", "password": PASSWORD})
    assert status == 200 and first["token_type"] == "Bearer" and first["expires_in"] == 3600
    access = first["access_token"]
    status, me = call("GET", f"{live.url}{AUTH}/me", key=access)
    assert status == 200 and me["username"] == "kim"
    # a user token works wherever a key does: a read route 200, a write route 403
    status, recs = call("POST", f"{live.url}/api/v1/recommendations",
                        {"user_id": "1", "limit": 3}, key=access)
    assert status == 200 and len(recs["recommendations"]) == 3
    status, denied = call("POST", f"{live.url}/api/v1/profile/update",
                          {"user_id": "kim", "signup_genres": ["Drama"]}, key=access)
    assert status == 403 and denied["required_scope"] == "write"
    assert call("GET", f"{live.url}{AUTH}/me", key=live.read_key)[0] == 403  # a key is no user

    status, second = call("POST", f"{live.url}{AUTH}/refresh",
                          {"refresh_token": first["refresh_token"]})
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert call("GET", f"{live.url}{AUTH}/me", key=second["access_token"])[0] == 200
    status, reused = call("POST", f"{live.url}{AUTH}/refresh",
                          {"refresh_token": first["refresh_token"]})
    assert status == 401 and reused["error"] == "refresh_token_reused"
    for token in (access, second["access_token"]):  # the whole family is revoked
        assert call("GET", f"{live.url}{AUTH}/me", key=token)[0] == 401
    assert call("POST", f"{live.url}{AUTH}/refresh",
                {"refresh_token": second["refresh_token"]})[0] == 401

    status, fresh = call("POST", f"{live.url}{AUTH}/login",
                         {"username": "kim", "password": PASSWORD})
    assert status == 200
    status, out = call("POST", f"{live.url}{AUTH}/logout", None, key=fresh["access_token"])
    assert status == 200 and out == {"revoked": True}
    assert call("GET", f"{live.url}{AUTH}/me", key=fresh["access_token"])[0] == 401
    assert call("POST", f"{live.url}{AUTH}/refresh",
                {"refresh_token": fresh["refresh_token"]})[0] == 401


def test_admin_user_reaches_admin_routes(live: RunningServer) -> None:
    status, tokens = call("POST", f"{live.url}{AUTH}/login",
                          {"username": "root", "password": PASSWORD})
    assert status == 200 and tokens["scope"] == "read write admin"
    status, listing = call("GET", f"{live.url}/api/v1/experiments", key=tokens["access_token"])
    assert status == 200, listing


def test_totp_second_factor(live: RunningServer) -> None:
    call("POST", f"{live.url}{AUTH}/register", {"username": "lee", "password": PASSWORD})
    _, tokens = call("POST", f"{live.url}{AUTH}/login", {"username": "lee", "password": PASSWORD})
    access = tokens["access_token"]
    status, enrol = call("POST", f"{live.url}{AUTH}/totp/enroll", None, key=access)
    assert status == 200 and enrol["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrol["secret"])
    status, bad = call("POST", f"{live.url}{AUTH}/totp/confirm", {"code": "12345"}, key=access)
    assert status == 400 and bad["fields"] == ["code"]
    status, ok = call("POST", f"{live.url}{AUTH}/totp/confirm", {"code": totp.now()}, key=access)
    assert status == 200 and ok == {"totp_enabled": True}
    status, needed = call("POST", f"{live.url}{AUTH}/login",
                          {"username": "lee", "password": PASSWORD})
    assert status == 401 and needed["error"] == "totp_required"
    step = int(__import__("time").time() // 30) + 1  # the current code was spent confirming
    status, done = call("POST", f"{live.url}{AUTH}/login", {
        "username": "lee", "password": PASSWORD, "totp_code": totp.generate_otp(step)})
    assert status == 200 and done["access_token"]
    status, me = call("GET", f"{live.url}{AUTH}/me", key=done["access_token"])
    assert status == 200 and me["totp_enabled"] is True


def test_free_tier_limit_answers_429_with_retry_after(live: RunningServer) -> None:
    call("POST", f"{live.url}{AUTH}/register", {"username": "max", "password": PASSWORD})
    _, tokens = call("POST", f"{live.url}{AUTH}/login", {"username": "max", "password": PASSWORD})
    statuses = [call("GET", f"{live.url}{AUTH}/me", key=tokens["access_token"])[0]
                for _ in range(30)]
    assert statuses == [200] * 30  # SPEC free tier: 30 a minute
    status, out = _raw_429(f"{live.url}{AUTH}/me", tokens["access_token"])
    assert status == 429 and out["body"]["error"] == "rate_limited"
    assert out["body"]["tier"] == "free_user" and 1 <= int(out["retry_after"]) <= 2
    # another caller is not affected: buckets are per user, key and IP
    assert call("POST", f"{live.url}/api/v1/recommendations", {"user_id": "1"},
                key=live.read_key)[0] == 200


def _raw_429(url: str, token: str) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
            return resp.status, {"body": json.loads(resp.read()), "retry_after": None}
    except urllib.error.HTTPError as exc:
        return exc.code, {"body": json.loads(exc.read()),
                          "retry_after": exc.headers.get("Retry-After")}


def test_login_guessing_is_limited_per_ip(live: RunningServer) -> None:
    """Last on purpose: it empties this IP's login bucket (12 a minute here)."""
    statuses = [call("POST", f"{live.url}{AUTH}/login",
                     {"username": "kim", "password": f"guess-{i}"})[0] for i in range(14)]
    assert 429 in statuses and set(statuses) <= {401, 429}
    assert statuses[statuses.index(429):] == [429] * (len(statuses) - statuses.index(429))
