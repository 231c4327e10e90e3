"""Users (argon2, roles, TOTP), JWT access/refresh tokens (rotation, families, revocation) and
the cached authenticator, on a real SQLite store (issue 13)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import jwt
import pyotp
import pytest

from sona.db import sqlite_url
from sona.serving.auth import KeyStore, require_scope
from sona.serving.errors import ApiError
from sona.serving.identity import Authenticator
from sona.serving.tokens import ALGORITHM, AuthConfig, TokenService
from sona.serving.users import UserStore

SECRET = "s" * 40


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "auth.db")


@pytest.fixture()
def users(url: str) -> UserStore:
    return UserStore(url)


@pytest.fixture()
def tokens(url: str, users: UserStore) -> TokenService:
    return TokenService(url, users, AuthConfig(jwt_secret=SECRET))


def test_passwords_are_argon2_hashes_and_names_unique(users: UserStore, tmp_path: Path) -> None:
    alice = users.register("alice", "correct horse")
    assert alice.role == "free_user" and alice.scopes == ("read",)
    rows = sqlite3.connect(tmp_path / "auth.db").execute(
        "select password_hash from users").fetchall()
    assert rows[0][0].startswith("$argon2id$") and "correct horse" not in rows[0][0]
    assert users.authenticate("alice", "correct horse") == alice
    assert users.authenticate("alice", "wrong horse!") is None
    assert users.authenticate("nobody", "correct horse") is None
    with pytest.raises(ApiError) as err:
        users.register("alice", "another one")
    assert err.value.status == 409 and err.value.details["fields"] == ["username"]
    for name, password, field in [("a", "long enough", "username"),
                                  ("bob smith", "long enough", "username"),
                                  ("bob", "short", "password")]:
        with pytest.raises(ApiError) as err:
            users.register(name, password)
        assert err.value.status == 400 and err.value.details["fields"] == [field]
    with pytest.raises(ValueError, match="roles"):
        users.register("carol", "long enough", role="root")
    assert users.set_role(alice.user_id, "premium_user")
    assert users.get(alice.user_id).scopes == ("read", "write")  # type: ignore[union-attr]
    assert users.set_disabled(alice.user_id, True)
    assert users.authenticate("alice", "correct horse") is None


def test_access_token_claims_and_rejections(users: UserStore, tokens: TokenService) -> None:
    user = users.register("dave", "password-1", role="premium_user")
    pair = tokens.login("dave", "password-1")
    claims = tokens.verify_access(pair.access_token)
    assert claims is not None and claims.user_id == user.user_id
    assert claims.scopes == ("read", "write") and claims.role == "premium_user"
    assert pair.expires_in == 3600 and pair.refresh_expires_in == 7 * 86400
    assert tokens.verify_access(pair.refresh_token) is None  # a refresh token is no access
    payload = jwt.decode(pair.access_token, SECRET, algorithms=[ALGORITHM],
                         options={"verify_signature": True}, issuer="sona")
    expired = jwt.encode({**payload, "exp": int(time.time()) - 10}, SECRET, ALGORITHM)
    assert tokens.verify_access(expired) is None
    forged = jwt.encode({**payload, "role": "admin", "scope": "read write admin"},
                        "x" * 40, ALGORITHM)
    assert tokens.verify_access(forged) is None
    with pytest.raises(ApiError) as err:
        tokens.login("dave", "wrong-password")
    assert err.value.status == 401


def test_refresh_rotates_and_reuse_revokes_the_family(users: UserStore,
                                                      tokens: TokenService) -> None:
    users.register("erin", "password-1")
    first = tokens.login("erin", "password-1")
    second = tokens.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert tokens.verify_access(second.access_token) is not None
    with pytest.raises(ApiError) as err:  # the rotated token comes back: stolen
        tokens.refresh(first.refresh_token)
    assert err.value.status == 401 and err.value.error == "refresh_token_reused"
    # the whole family is gone: the legitimate holder's tokens too
    assert tokens.verify_access(second.access_token) is None
    with pytest.raises(ApiError) as err:
        tokens.refresh(second.refresh_token)
    assert err.value.error == "invalid_refresh_token"
    other = tokens.login("erin", "password-1")  # a new login is a new family
    assert tokens.verify_access(other.access_token) is not None


def test_logout_revocation_survives_a_restart(url: str, users: UserStore,
                                              tokens: TokenService) -> None:
    users.register("fay", "password-1")
    pair = tokens.login("fay", "password-1")
    claims = tokens.verify_access(pair.access_token)
    assert claims is not None
    tokens.revoke_family(claims.family)
    assert tokens.verify_access(pair.access_token) is None
    restarted = TokenService(url, users, AuthConfig(jwt_secret=SECRET))
    assert restarted.verify_access(pair.access_token) is None
    with pytest.raises(ApiError):
        restarted.refresh(pair.refresh_token)


def test_generated_secret_is_persisted(url: str, users: UserStore) -> None:
    one = TokenService(url, users, AuthConfig())
    users.register("gus", "password-1")
    pair = one.login("gus", "password-1")
    two = TokenService(url, users, AuthConfig())  # next start: same secret from the database
    assert two.verify_access(pair.access_token) is not None
    with pytest.raises(ValueError, match="32 characters"):
        TokenService(url, users, AuthConfig(jwt_secret="short"))


def test_totp_enrol_confirm_then_login_needs_a_fresh_code(users: UserStore,
                                                          tokens: TokenService) -> None:
    user = users.register("hana", "password-1")
    secret, uri = users.begin_totp(user.user_id)
    assert uri.startswith("otpauth://totp/SONA:hana") and secret in uri
    assert not users.confirm_totp(user.user_id, "000000" if pyotp.TOTP(secret).now()
                                  != "000000" else "111111")
    code = pyotp.TOTP(secret).now()
    assert users.confirm_totp(user.user_id, code)
    with pytest.raises(ApiError) as err:
        tokens.login("hana", "password-1")
    assert err.value.error == "totp_required" and err.value.details["fields"] == ["totp_code"]
    with pytest.raises(ApiError) as err:  # the confirming code was spent
        tokens.login("hana", "password-1", code)
    assert err.value.error == "invalid_totp"
    # the next step's code (accepted within one step of drift) logs in, once
    step = int(time.time() // 30) + 1
    following = pyotp.TOTP(secret).generate_otp(step)
    assert tokens.verify_access(tokens.login("hana", "password-1", following).access_token)
    with pytest.raises(ApiError):
        tokens.login("hana", "password-1", following)
    with pytest.raises(ApiError) as err:
        users.begin_totp(user.user_id)
    assert err.value.status == 409


def test_authenticator_caches_keys_and_sees_logout_at_once(url: str, users: UserStore,
                                                           tokens: TokenService) -> None:
    keys = KeyStore(url)
    auth = Authenticator(keys, tokens, key_cache_s=3600.0)
    meta, key = keys.create(["write"], name="svc")
    principal = auth.verify(key)
    assert principal is not None and principal.actor == f"key:{meta.key_id}"
    assert principal.tier == "service"
    keys.revoke(meta.key_id)
    assert auth.verify(key) is not None  # cached for key_cache_s
    auth.forget(key)
    assert auth.verify(key) is None
    users.register("ivan", "password-1", role="admin")
    pair = tokens.login("ivan", "password-1")
    user = require_scope(pair.access_token, "admin", auth)
    assert user.actor.startswith("user:") and auth.verify(pair.access_token) is user
    claims = tokens.verify_access(pair.access_token)
    assert claims is not None
    tokens.revoke_family(claims.family)
    assert auth.verify(pair.access_token) is None  # the cached entry is checked on each hit
    with pytest.raises(ApiError) as err:
        require_scope(pair.access_token, "read", auth)
    assert err.value.status == 401
    free = tokens.issue(users.register("judy", "password-1"))
    with pytest.raises(ApiError) as err:
        require_scope(free.access_token, "write", auth)
    assert err.value.status == 403 and err.value.details["key_scopes"] == ["read"]
    assert auth.verify("not.a.jwt") is None and auth.verify("garbage") is None


def test_a_revocation_in_one_worker_is_refused_by_the_other_at_once(url: str,
                                                                   tmp_path: Path) -> None:
    from sona.shared import SharedState

    # two worker processes: their own stores, token services and caches over one database
    shared = [SharedState(tmp_path), SharedState(tmp_path)]
    users = UserStore(url)
    workers = []
    for one in shared:
        keys = KeyStore(url, shared=one)
        tokens = TokenService(url, users, AuthConfig(jwt_secret=SECRET), shared=one)
        workers.append(Authenticator(keys, tokens, key_cache_s=3600.0, shared=one))
    a, b = workers
    try:
        meta, key = a.keys.create(["write"], name="svc")
        assert a.verify(key) is not None and b.verify(key) is not None  # both cached
        assert a.keys.revoke(meta.key_id)
        assert b.verify(key) is None and a.verify(key) is None  # no key_cache_s wait

        users.register("kate", "password-1")
        pair = b.tokens.login("kate", "password-1")
        assert a.verify(pair.access_token) is not None
        assert b.verify(pair.access_token) is not None
        b.tokens.revoke_family(b.tokens.verify_access(pair.access_token).family)  # logout
        assert a.verify(pair.access_token) is None
        assert a.tokens.verify_access(pair.access_token) is None

        # refresh-token reuse noticed by one worker revokes the family in the other
        again = a.tokens.login("kate", "password-1")
        assert b.verify(again.access_token) is not None
        rotated = a.tokens.refresh(again.refresh_token)
        assert b.verify(rotated.access_token) is not None
        with pytest.raises(ApiError) as err:
            b.tokens.refresh(again.refresh_token)  # the spent one, replayed
        assert err.value.error == "refresh_token_reused"
        assert a.verify(rotated.access_token) is None and a.verify(again.access_token) is None
        with pytest.raises(ApiError):
            a.tokens.refresh(rotated.refresh_token)
    finally:
        for one in shared:
            one.close()
