"""API keys: format, hashed storage, scopes, revocation, expiry, header parsing."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time

import pytest

from sona.serving.auth import (
    KeyStore,
    api_key_from_headers,
    check_scopes,
    generate_key,
    hash_key,
    require_scope,
)
from sona.serving.errors import ApiError


@pytest.fixture
def store(tmp_path) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")


def test_key_format_and_hash() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(re.fullmatch(r"sk_[A-Za-z0-9]{32}", k) for k in keys)
    assert hash_key("sk_abc") == hashlib.sha256(b"sk_abc").hexdigest()
    assert len(hash_key("sk_abc")) == 64


def test_only_the_hash_is_stored(store: KeyStore, tmp_path) -> None:
    meta, plain = store.create(["admin"], name="ops")
    rows = sqlite3.connect(tmp_path / "keys.db").execute(
        "select key_hash, prefix, scopes from api_keys").fetchall()
    assert rows == [(hash_key(plain), plain[:7], '["admin"]')]
    raw = (tmp_path / "keys.db").read_bytes()
    assert plain.encode() not in raw
    assert meta.scopes == ("admin",) and meta.prefix == plain[:7]


def test_scopes_nest(store: KeyStore) -> None:
    _, admin = store.create(["admin"])
    _, write = store.create(["write"])
    _, read = store.create(["read"])
    assert require_scope(admin, "admin", store).scopes == ("admin",)
    assert require_scope(admin, "write", store)
    assert require_scope(write, "write", store) and require_scope(write, "read", store)
    with pytest.raises(ApiError) as err:
        require_scope(write, "admin", store)
    assert err.value.status == 403
    assert err.value.to_body()["required_scope"] == "admin"
    with pytest.raises(ApiError) as err:
        require_scope(read, "write", store)
    assert err.value.status == 403 and err.value.error == "forbidden"


@pytest.mark.parametrize("key", [None, "", "sk_" + "x" * 32, "not-a-key"])
def test_missing_or_unknown_keys_are_401(store: KeyStore, key: str | None) -> None:
    with pytest.raises(ApiError) as err:
        require_scope(key, "read", store)
    assert err.value.status == 401 and err.value.error == "unauthorized"


def test_revoked_and_expired_keys_fail(store: KeyStore) -> None:
    meta, plain = store.create(["write"])
    assert store.verify(plain) is not None
    assert store.revoke(meta.key_id) and not store.revoke(999)
    assert store.verify(plain) is None
    _, old = store.create(["write"], expires_at=time.time() - 1)
    assert store.verify(old) is None
    assert [k.revoked for k in store.list()] == [True, False]


def test_scope_validation() -> None:
    assert check_scopes(["write", "admin", "write"]) == ("write", "admin")
    with pytest.raises(ValueError, match="valid scopes"):
        check_scopes(["root"])
    with pytest.raises(ValueError):
        check_scopes([])
    with pytest.raises(ValueError, match="unknown scope"):
        require_scope("sk_x", "superuser", KeyStore("sqlite://"))


def test_key_from_headers() -> None:
    assert api_key_from_headers({"Authorization": "Bearer sk_a"}) == "sk_a"
    assert api_key_from_headers({"authorization": "bearer  sk_b "}) == "sk_b"
    assert api_key_from_headers({"X-API-Key": "sk_c"}) == "sk_c"
    assert api_key_from_headers({"Authorization": "Basic abc"}) is None
    assert api_key_from_headers({}) is None
