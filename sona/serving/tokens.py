"""JWT access and refresh tokens with rotation, families and revocation (SPEC §5).

Tokens are HS256 JWTs (``pyjwt``) signed with one secret: ``auth.jwt_secret`` from the
serving config, else a random 256-bit secret generated on first start and kept in the
serving database (``auth_secrets``), so tokens survive restarts without a file to manage.
SPEC's original signs with RS256; a shared secret is enough here because the serving
process is the only issuer and the only verifier.

- **Access** token, ``auth.access_ttl_s`` (1 h): claims ``sub`` (user id), ``role``,
  ``scope``, ``fam``, ``jti``, ``iat``, ``exp``, ``iss``, ``typ: "access"``. Verified
  without SQL: signature, expiry, issuer, type, and its family against the in-memory set
  of revoked families.
- **Refresh** token, ``auth.refresh_ttl_s`` (7 d): ``typ: "refresh"``; each is a row
  (``refresh_tokens``) that can be used once. :meth:`TokenService.refresh` marks it
  ``rotated`` and issues a new pair in the same **family** (one family per login). Using a
  rotated refresh token again means it was copied: the whole family is revoked, so both
  the thief's and the user's tokens stop working and the user logs in again.
- **Logout** revokes the family of the access token presented (its refresh tokens and
  every access token issued with them). Revoked families are kept (``revoked_families``)
  until their last token would have expired, and loaded into memory at start-up.

Across worker processes (issue 12): each worker holds the revoked families in memory. A
revocation (logout, refresh-token reuse, a disabled user's refresh) bumps the shared
version ``auth`` once committed, and a worker re-reads the set when that version moved
before it checks a token, so a family revoked through one worker is refused by every other
at once (one mapped-counter read per check when nothing changed).

A role change or a disabled account takes effect at the next refresh (at most one access
TTL later); logout is immediate.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass

import jwt
from sqlalchemy import Float, Integer, String, delete, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.serving.auth import AUTH_DOMAIN
from sona.serving.errors import ApiError
from sona.serving.users import User, UserStore
from sona.shared import SharedState

ALGORITHM = "HS256"
_SECRET_NAME = "jwt_hs256"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Users, tokens and public reads (``auth:`` in the serving YAML)."""

    # serve read-only routes (GET, and the POST routes that only read) without credentials;
    # false: every route but the probes, docs and login/register/refresh needs a key or token
    public_reads: bool = True
    # HS256 signing secret (>= 32 characters); None: generated on first start and stored
    # in the serving database
    jwt_secret: str | None = None
    # "iss" claim of issued tokens (and the one accepted)
    issuer: str = "sona"
    # access-token lifetime, seconds (SPEC: 1 h)
    access_ttl_s: float = 3600.0
    # refresh-token lifetime, seconds (SPEC: 7 d)
    refresh_ttl_s: float = 7 * 86400.0
    # role of users created by POST /api/v1/auth/register
    default_role: str = "free_user"
    # false: POST /api/v1/auth/register answers 403 (users come from `sona users create`)
    open_registration: bool = True
    # seconds a verified API key is trusted without asking the database again (a revoked
    # key stops working at most this long after `sona keys revoke`)
    key_cache_s: float = 5.0


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token."""

    user_id: int
    username: str
    role: str
    scopes: tuple[str, ...]
    family: str
    jti: str
    expires_at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What login and refresh return."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires
    refresh_expires_in: int  # seconds until the refresh token expires
    scopes: tuple[str, ...]


class _Base(DeclarativeBase):
    pass


class _SecretRow(_Base):
    __tablename__ = "auth_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class _RefreshRow(_Base):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))  # active | rotated | revoked


class _RevokedFamilyRow(_Base):
    __tablename__ = "revoked_families"

    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)  # when its last token expires
    reason: Mapped[str] = mapped_column(String(32))


def _unauthorized(message: str, error: str = "unauthorized") -> ApiError:
    return ApiError(401, error, message)


class TokenService:
    """Issues, verifies, rotates and revokes the JWTs of :class:`UserStore` users.

    Args:
        url: SQLAlchemy URL (the serving database).
        users: the user store (login checks and refresh re-reads the user's role).
        config: token settings.
        shared: the versions shared with the server's other workers: revocations are
            announced through, and the revoked set re-read on, the ``auth`` version.
    """

    def __init__(self, url: str, users: UserStore, config: AuthConfig, *,
                 shared: SharedState | None = None) -> None:
        if config.access_ttl_s <= 0 or config.refresh_ttl_s <= 0:
            raise ValueError("auth.access_ttl_s and auth.refresh_ttl_s must be > 0")
        if config.jwt_secret is not None and len(config.jwt_secret) < 32:
            raise ValueError("auth.jwt_secret must have at least 32 characters")
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)
        self.users = users
        self.config = config
        self._secret = config.jwt_secret or self._stored_secret()
        self._lock = threading.Lock()
        self.shared = shared
        # the shared version the revoked set was read at (read before the set)
        self._revoked_version = self._auth_version()
        self._revoked: set[str] = self._load_revoked()
        self._reload_lock = threading.Lock()

    def _auth_version(self) -> int:
        return self.shared.version(AUTH_DOMAIN) if self.shared is not None else 0

    def _revoked_families(self) -> set[str]:
        """The revoked families, re-read when any worker revoked one since the last read."""
        version = self._auth_version()
        if version != self._revoked_version:
            with self._reload_lock:
                version = self._auth_version()
                if version != self._revoked_version:
                    self._revoked = self._load_revoked()
                    self._revoked_version = version
        return self._revoked

    def _announce_revocation(self) -> None:
        """After a revocation committed: the other workers re-read the revoked set."""
        if self.shared is not None:
            self.shared.bump(AUTH_DOMAIN)

    def _stored_secret(self) -> str:
        with Session(self.engine) as session, session.begin():
            row = session.get(_SecretRow, _SECRET_NAME)
            if row is None:
                row = _SecretRow(name=_SECRET_NAME, value=secrets.token_urlsafe(32))
                session.add(row)
            return row.value

    def _load_revoked(self) -> set[str]:
        now = time.time()
        with Session(self.engine) as session, session.begin():
            session.execute(delete(_RevokedFamilyRow).where(_RevokedFamilyRow.expires_at < now))
            return set(session.scalars(select(_RevokedFamilyRow.family)))

    # --- issue ------------------------------------------------------------------------------

    def issue(self, user: User, *, family: str | None = None) -> TokenPair:
        """A new access + refresh pair for ``user`` (a new family unless ``family`` is given).
        """
        now = time.time()
        family = family or uuid.uuid4().hex
        refresh_jti = uuid.uuid4().hex
        refresh_exp = now + self.config.refresh_ttl_s
        with Session(self.engine) as session, session.begin():
            session.add(_RefreshRow(jti=refresh_jti, family=family, user_id=user.user_id,
                                    issued_at=now, expires_at=refresh_exp, state="active"))
        common = {"sub": str(user.user_id), "iss": self.config.issuer, "fam": family,
                  "iat": int(now)}
        access = jwt.encode({**common, "typ": "access", "jti": uuid.uuid4().hex,
                             "name": user.username, "role": user.role,
                             "scope": " ".join(user.scopes),
                             "exp": int(now + self.config.access_ttl_s)},
                            self._secret, algorithm=ALGORITHM)
        refresh = jwt.encode({**common, "typ": "refresh", "jti": refresh_jti,
                              "exp": int(refresh_exp)}, self._secret, algorithm=ALGORITHM)
        return TokenPair(access, refresh, int(self.config.access_ttl_s),
                         int(self.config.refresh_ttl_s), user.scopes)

    def login(self, username: str, password: str, totp_code: str | None = None) -> TokenPair:
        """Check the password (and the TOTP code when the user has one) and issue a pair.

        Raises:
            ApiError: 401 ``unauthorized`` (wrong user name or password, disabled account),
                401 ``totp_required`` (TOTP is on and no code was sent), 401
                ``invalid_totp`` (a wrong, stale or reused code).
        """
        user = self.users.authenticate(username, password)
        if user is None:
            raise _unauthorized("invalid user name or password")
        if user.totp_enabled:
            if not totp_code:
                raise ApiError(401, "totp_required", "this account has a second factor: "
                               "send totp_code", fields=["totp_code"])
            if not self.users.verify_totp(user.user_id, totp_code):
                raise ApiError(401, "invalid_totp", "totp_code is wrong, expired or was "
                               "already used", fields=["totp_code"])
        return self.issue(user)

    # --- verify -----------------------------------------------------------------------------

    def _decode(self, token: str, typ: str) -> dict[str, object] | None:
        try:
            claims: dict[str, object] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=self.config.issuer,
                options={"require": ["exp", "iat", "sub", "jti", "fam", "typ", "iss"]})
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != typ or str(claims.get("fam")) in self._revoked_families():
            return None
        return claims

    def verify_access(self, token: str) -> AccessClaims | None:
        """The claims of a valid, unexpired, unrevoked access token, else None (no SQL)."""
        claims = self._decode(token, "access")
        if claims is None:
            return None
        role = str(claims.get("role", ""))
        scope = claims.get("scope")
        return AccessClaims(int(str(claims["sub"])), str(claims.get("name", "")), role,
                            tuple(str(scope).split()) if scope else (), str(claims["fam"]),
                            str(claims["jti"]), float(str(claims["exp"])))

    def is_revoked(self, family: str) -> bool:
        """Whether ``family`` was revoked (logout or refresh-token reuse), by any worker."""
        return family in self._revoked_families()

    # --- rotate and revoke ------------------------------------------------------------------

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: spend ``refresh_token`` and issue a new pair in its family.

        Raises:
            ApiError: 401 ``invalid_refresh_token`` (bad signature, expired, revoked, not a
                refresh token, unknown or disabled user), 401 ``refresh_token_reused`` (it
                was rotated before: the family is revoked).
        """
        claims = self._decode(refresh_token, "refresh")
        if claims is None:
            raise _unauthorized("refresh token is invalid, expired or revoked",
                                "invalid_refresh_token")
        jti, family = str(claims["jti"]), str(claims["fam"])
        # decide inside the transaction, raise after it commits (a raise inside would roll
        # back the family's revocation)
        with self._lock, Session(self.engine) as session, session.begin():
            row = session.get(_RefreshRow, jti)
            state = "unknown" if row is None else row.state
            if row is not None and state == "rotated":
                self._revoke_family(session, family, "reuse")
            elif row is not None and state == "active":
                row.state = "rotated"
        if state == "rotated":
            self._announce_revocation()
            raise _unauthorized("refresh token was already used: every token of this "
                                "session is revoked, log in again", "refresh_token_reused")
        if state != "active":
            raise _unauthorized("refresh token is unknown or revoked", "invalid_refresh_token")
        user = self.users.get(int(str(claims["sub"])))
        if user is None or user.disabled:
            self.revoke_family(family, "disabled")
            raise _unauthorized("the user no longer exists or is disabled",
                                "invalid_refresh_token")
        return self.issue(user, family=family)

    def revoke_family(self, family: str, reason: str = "logout") -> None:
        """Revoke every refresh and access token of ``family`` (idempotent), in every
        worker."""
        with self._lock, Session(self.engine) as session, session.begin():
            self._revoke_family(session, family, reason)
        self._announce_revocation()

    def _revoke_family(self, session: Session, family: str, reason: str) -> None:
        now = time.time()
        session.execute(update(_RefreshRow).where(_RefreshRow.family == family)
                        .values(state="revoked"))
        if session.get(_RevokedFamilyRow, family) is None:
            # access tokens of the family expire at most access_ttl after its last refresh
            last = session.scalars(select(_RefreshRow.expires_at)
                                   .where(_RefreshRow.family == family)
                                   .order_by(_RefreshRow.expires_at.desc())).first()
            session.add(_RevokedFamilyRow(
                family=family, revoked_at=now, reason=reason,
                expires_at=max(last or now, now + self.config.access_ttl_s)))
        self._revoked.add(family)


__all__ = ["ALGORITHM", "AccessClaims", "AuthConfig", "TokenPair", "TokenService"]
