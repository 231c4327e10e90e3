"""Who is calling: one verifier for API keys and user tokens, cached for the hot path.

:class:`Authenticator` is the :class:`~sona.serving.auth.CredentialVerifier` of the serving
app. It turns the credential of ``Authorization: Bearer ...`` / ``X-API-Key`` into a
:class:`Principal`:

- ``sk_...``: an API key (:class:`~sona.serving.auth.KeyStore`), a service; rate-limit
  tier ``service``;
- ``<header>.<payload>.<signature>``: a user's JWT access token
  (:class:`~sona.serving.tokens.TokenService`); tier = the user's role.

Every request with credentials is verified twice (once by the access middleware for its
rate-limit bucket, once by the route's scope check), so verified credentials are cached in
a dict: a key for ``auth.key_cache_s`` seconds, a token until it expires.

Across worker processes (issue 12), given the server's
:class:`~sona.shared.SharedState`: each cache entry remembers the shared ``auth``
version it was verified at, which every revocation bumps once committed (a key revoked with
``sona keys revoke``, a token family revoked by logout or refresh-token reuse in any
worker). A hit is one read of that mapped counter; an entry older than the counter is
verified again, so a revoked credential is refused by every worker at once. Without a
shared state (one process, tests) a cached token is checked against the revoked families
on every hit instead, and a key revoked elsewhere works up to ``auth.key_cache_s`` longer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from sona.serving.auth import AUTH_DOMAIN, KEY_PREFIX, KeyStore, allows
from sona.serving.tokens import TokenService
from sona.shared import SharedState

#: most credentials kept in the cache (it is emptied when full: each entry is cheap to redo)
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Verified credentials of one request."""

    kind: Literal["key", "user"]
    subject: str  # key id or user id
    name: str  # key name or user name
    scopes: tuple[str, ...]
    tier: str  # rate-limit tier (RateLimitConfig.tiers field)
    expires_at: float | None  # unix seconds; None: never
    family: str | None = None  # token family of a user's token

    def allows(self, scope: str) -> bool:
        """Whether one of the granted scopes implies ``scope``."""
        return allows(self.scopes, scope)

    @property
    def actor(self) -> str:
        """Who acts, for audit rows and rate-limit buckets: ``key:<id>`` or ``user:<id>``."""
        return f"{self.kind}:{self.subject}"


class Authenticator:
    """Verifies API keys and access tokens, with an in-memory cache (module docstring).

    Args:
        keys: the API key store.
        tokens: the user token service.
        key_cache_s: seconds a verified key is trusted without SQL.
        shared: the versions shared with the server's other workers: a cached credential
            is verified again once any worker (or ``sona keys revoke``) revoked one.
    """

    def __init__(self, keys: KeyStore, tokens: TokenService, *, key_cache_s: float = 5.0,
                 shared: SharedState | None = None) -> None:
        self.keys = keys
        self.tokens = tokens
        self.key_cache_s = float(key_cache_s)
        self.shared = shared
        # credential -> (principal, time.monotonic() deadline, shared auth version)
        self._cache: dict[str, tuple[Principal, float, int]] = {}

    def verify(self, credential: str | None) -> Principal | None:
        """The principal of a valid credential, else None (unknown, revoked, expired)."""
        if not credential:
            return None
        now = time.monotonic()
        # read before verifying: a revocation committed meanwhile moves it past the entry
        version = self.shared.version(AUTH_DOMAIN) if self.shared is not None else 0
        hit = self._cache.get(credential)
        if hit is not None:
            principal, deadline, seen = hit
            if now < deadline and seen == version and (
                    self.shared is not None or principal.family is None
                    or not self.tokens.is_revoked(principal.family)):
                return principal
            self._cache.pop(credential, None)
        principal_or_none = self._lookup(credential)
        if principal_or_none is None:
            return None
        principal = principal_or_none
        wall = time.time()
        ttl = self.key_cache_s if principal.kind == "key" else float("inf")
        if principal.expires_at is not None:
            ttl = min(ttl, principal.expires_at - wall)
        if ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[credential] = (principal, now + ttl, version)
        return principal

    def forget(self, credential: str) -> None:
        """Drop a credential from the cache (after revoking it in this process)."""
        self._cache.pop(credential, None)

    def _lookup(self, credential: str) -> Principal | None:
        if credential.startswith(KEY_PREFIX):
            key = self.keys.verify(credential)
            if key is None:
                return None
            return Principal("key", str(key.key_id), key.name, key.scopes, "service",
                             key.expires_at)
        if credential.count(".") != 2:
            return None
        claims = self.tokens.verify_access(credential)
        if claims is None:
            return None
        return Principal("user", str(claims.user_id), claims.username, claims.scopes,
                         claims.role, claims.expires_at, claims.family)


__all__ = ["MAX_CACHED", "Authenticator", "Principal"]
