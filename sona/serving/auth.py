"""API keys for the serving endpoints (SPEC §5): random, shown once, stored as SHA-256.

A key is ``sk_`` followed by 32 characters drawn from ``[A-Za-z0-9]`` by :mod:`secrets`.
Only its SHA-256 hex digest is stored (with a short display prefix), so a leaked database
does not leak usable keys. Scopes nest: ``admin`` implies ``write`` implies ``read``.
Clients send the key as ``Authorization: Bearer sk_...`` or ``X-API-Key: sk_...``.

Every endpoint with a scope calls :func:`require_scope`; missing or unknown credentials are
a 401, credentials without the scope a 403 (both :class:`~sona.serving.errors.ApiError`).
The credential may also be a user's JWT access token (``Authorization: Bearer eyJ...``):
the verifier passed to :func:`require_scope` is then the serving app's
:class:`~sona.serving.identity.Authenticator`, which accepts both (API keys stay for
services, tokens are for users, :mod:`sona.serving.tokens`).

Across worker processes (issue 12): a :class:`KeyStore` given the server's
:class:`~sona.shared.SharedState` bumps the shared version ``auth``
(:data:`AUTH_DOMAIN`) after a revocation commits (``sona keys revoke`` opens the serving
database's shared state for that), and every worker's
:class:`~sona.serving.identity.Authenticator` drops what it cached once that version moved:
a revoked key is refused by every worker at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Boolean, Float, Integer, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.serving.errors import ApiError
from sona.shared import SharedState

KEY_PREFIX = "sk_"
KEY_RANDOM_CHARS = 32
SCOPES: tuple[str, ...] = ("read", "write", "admin")
_IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}
_ALPHABET = string.ascii_letters + string.digits
#: shared-version domain of credentials: bumped after a key or token family is revoked
AUTH_DOMAIN = "auth"


def generate_key() -> str:
    """A new plaintext key: ``sk_`` + 32 random alphanumerics (~190 bits)."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key (what the store keeps)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Validate scope names; returns them de-duplicated in :data:`SCOPES` order.

    Raises:
        ValueError: empty, or an unknown scope (the valid ones are listed).
    """
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"invalid scope(s) {unknown or '(none)'}; valid scopes: {list(SCOPES)}")
    return tuple(s for s in SCOPES if s in set(scopes))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Metadata of a stored key (never the key itself)."""

    key_id: int
    name: str
    prefix: str  # first characters of the key, for humans to recognise it
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked: bool

    def allows(self, scope: str) -> bool:
        """Whether one of the key's scopes implies ``scope``."""
        return allows(self.scopes, scope)

    @property
    def actor(self) -> str:
        """Who acts, for audit rows: ``key:<id>``."""
        return f"key:{self.key_id}"


def allows(granted: Sequence[str], scope: str) -> bool:
    """Whether one of the ``granted`` scopes implies ``scope`` (admin > write > read)."""
    return any(scope in _IMPLIED[s] for s in granted)


class Grant(Protocol):
    """Verified credentials: an :class:`ApiKey` or a user's token
    (:class:`~sona.serving.identity.Principal`)."""

    @property
    def scopes(self) -> tuple[str, ...]: ...

    @property
    def actor(self) -> str: ...

    def allows(self, scope: str) -> bool: ...


class CredentialVerifier(Protocol):
    """Anything that turns a presented credential into a :class:`Grant` (or None)."""

    def verify(self, credential: str | None) -> Grant | None: ...


class _Base(DeclarativeBase):
    pass


class _KeyRow(_Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


def _key(row: _KeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.prefix, tuple(json.loads(row.scopes)), row.created_at,
                  row.expires_at, row.revoked)


class KeyStore:
    """Hashed API keys with scopes in a relational store.

    Args:
        url: SQLAlchemy URL (the serving SQLite database).
        shared: the serving workers' shared state: a revocation bumps :data:`AUTH_DOMAIN`,
            so every worker stops trusting the key at once. None: nothing is announced
            (the workers' key caches then keep it up to ``auth.key_cache_s``).
    """

    def __init__(self, url: str, *, shared: SharedState | None = None) -> None:
        self.engine = make_engine(url)
        self.shared = shared
        _Base.metadata.create_all(self.engine)

    def create(self, scopes: Sequence[str], *, name: str = "",
               expires_at: float | None = None) -> tuple[ApiKey, str]:
        """Store a new key; returns its metadata and the plaintext (shown once, not stored).

        Raises:
            ValueError: invalid scopes.
        """
        valid = check_scopes(scopes)
        plain = generate_key()
        with Session(self.engine) as session, session.begin():
            row = _KeyRow(key_hash=hash_key(plain), prefix=plain[:7], name=name,
                          scopes=json.dumps(list(valid)), created_at=time.time(),
                          expires_at=expires_at, revoked=False)
            session.add(row)
            session.flush()
            return _key(row), plain

    def verify(self, key: str | None) -> ApiKey | None:
        """The key's metadata when it exists, is not revoked and has not expired."""
        if not key or not key.startswith(KEY_PREFIX):
            return None
        with Session(self.engine) as session:
            row = session.scalars(select(_KeyRow).where(_KeyRow.key_hash == hash_key(key))).first()
            if row is None or row.revoked:
                return None
            if row.expires_at is not None and row.expires_at <= time.time():
                return None
            return _key(row)

    def revoke(self, key_id: int) -> bool:
        """Revoke a key by id (announced to the workers once committed); False when no
        such key."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(update(_KeyRow).where(_KeyRow.id == int(key_id))
                                     .values(revoked=True))
            found = bool(result.rowcount)  # type: ignore[attr-defined]
        if found and self.shared is not None:
            self.shared.bump(AUTH_DOMAIN)
        return found

    def list(self) -> list[ApiKey]:
        """All keys' metadata, oldest first."""
        with Session(self.engine) as session:
            return [_key(r) for r in session.scalars(select(_KeyRow).order_by(_KeyRow.id))]

    def require_scope(self, key: str | None, scope: str) -> Grant:
        """See :func:`require_scope`."""
        return require_scope(key, scope, self)


def require_scope(key: str | None, scope: str, store: CredentialVerifier) -> Grant:
    """Check that the credential ``key`` (API key or access token) is valid and grants
    ``scope``.

    Args:
        key: the presented credential (:func:`api_key_from_headers`).
        scope: the scope the endpoint needs.
        store: a :class:`KeyStore` (keys only) or the app's
            :class:`~sona.serving.identity.Authenticator` (keys and user tokens).

    Raises:
        ApiError: 401 ``unauthorized`` (missing, unknown, revoked or expired credential),
            403 ``forbidden`` (valid credential without ``scope``).
        ValueError: ``scope`` is not one of :data:`SCOPES` (a programming error).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {list(SCOPES)}")
    if not key:
        raise ApiError(401, "unauthorized", "this endpoint needs credentials: send "
                       "'Authorization: Bearer <API key or access token>' or "
                       "'X-API-Key: sk_...'")
    found = store.verify(key)
    if found is None:
        raise ApiError(401, "unauthorized", "invalid, revoked or expired API key or token")
    if not found.allows(scope):
        raise ApiError(403, "forbidden", f"these credentials lack the {scope!r} scope",
                       required_scope=scope, key_scopes=list(found.scopes))
    return found


def api_key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The credential (API key or access token) from ``Authorization: Bearer <...>`` or
    ``X-API-Key`` (header names case-insensitive)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return lowered.get("x-api-key", "").strip() or None


__all__ = [
    "AUTH_DOMAIN", "KEY_PREFIX", "SCOPES", "ApiKey", "CredentialVerifier", "Grant",
    "KeyStore", "allows", "api_key_from_headers", "check_scopes", "generate_key", "hash_key",
    "require_scope",
]
