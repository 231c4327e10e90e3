"""End users of the API: accounts, argon2 password hashes, roles and TOTP (SPEC §5).

Users live in the serving database next to the API keys (SQLite by default, PostgreSQL by
URL, through :func:`sona.db.make_engine`). Passwords are stored only as argon2id hashes
(``argon2-cffi`` defaults: RFC 9106 low-memory profile); an unknown user name costs the
same hash verification as a wrong password, so timing does not reveal which names exist.

A user's role gives its scopes (:data:`ROLE_SCOPES`; SPEC roles): ``free_user`` reads,
``premium_user`` also writes, ``admin`` administers. Registration over HTTP always makes
the configured default role; ``sona users set-role`` changes it.

TOTP (RFC 6238, 30 s steps, 6 digits, ``pyotp``) is opt-in per user: :meth:`UserStore.
begin_totp` stores a pending secret, :meth:`UserStore.confirm_totp` turns it on once the
user proves their authenticator app has it, and from then on a login needs a current code.
A code is accepted once (the step it belongs to is remembered), with one step of clock
drift either side.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Float, Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.serving.errors import ApiError

ROLES: tuple[str, ...] = ("free_user", "premium_user", "admin")
#: the scopes each role grants (see :mod:`sona.serving.auth` for how scopes nest)
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "free_user": ("read",),
    "premium_user": ("read", "write"),
    "admin": ("read", "write", "admin"),
}
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$"
MIN_PASSWORD = 8
MAX_PASSWORD = 256
TOTP_ISSUER = "SONA"

_HASHER = PasswordHasher()
# verified against when the user does not exist, so both paths cost one argon2 hash
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class User:
    """A user's public record (never the password hash or TOTP secret)."""

    user_id: int
    username: str
    role: str
    created_at: float  # unix seconds
    totp_enabled: bool
    disabled: bool

    @property
    def scopes(self) -> tuple[str, ...]:
        """Scopes granted by the role."""
        return ROLE_SCOPES[self.role]


class _Base(DeclarativeBase):
    pass


class _UserRow(_Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)


def _user(row: _UserRow) -> User:
    return User(row.id, row.username, row.role, row.created_at, bool(row.totp_enabled),
                bool(row.disabled))


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`.

    Raises:
        ValueError: unknown role (the valid ones are listed).
    """
    if role not in ROLE_SCOPES:
        raise ValueError(f"unknown role {role!r}; roles: {list(ROLES)}")
    return role


def check_credentials(username: str, password: str) -> None:
    """Validate a new user name and password.

    Raises:
        ApiError: 400 naming the field: a user name of 3-64 letters, digits, ``_.@-``
            (starting with a letter or digit), a password of 8-256 characters.
    """
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise ApiError(400, "validation_error", "username: 3-64 characters, letters, digits "
                       "and _.@- only, starting with a letter or digit", fields=["username"])
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ApiError(400, "validation_error", f"password: {MIN_PASSWORD}-{MAX_PASSWORD} "
                       "characters", fields=["password"])


class UserStore:
    """Users with argon2 password hashes, roles and TOTP in a relational store.

    Args:
        url: SQLAlchemy URL (the serving database).
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def register(self, username: str, password: str, *, role: str = "free_user") -> User:
        """Create a user.

        Raises:
            ApiError: 400 invalid user name or password, 409 the name is taken.
            ValueError: unknown role.
        """
        check_role(role)
        check_credentials(username, password)
        try:
            with Session(self.engine) as session, session.begin():
                row = _UserRow(username=username, password_hash=_HASHER.hash(password),
                               role=role, created_at=time.time(), disabled=False,
                               totp_secret=None, totp_enabled=False, totp_last_step=0)
                session.add(row)
                session.flush()
                return _user(row)
        except IntegrityError:
            raise ApiError(409, "conflict", f"username {username!r} is already taken",
                           fields=["username"]) from None

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is enabled, else None.

        A hash made with older argon2 parameters is re-hashed with the current ones.
        """
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(_UserRow).where(_UserRow.username == username)).first()
            try:
                _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                return None
            if row is None or row.disabled:
                return None
            if _HASHER.check_needs_rehash(row.password_hash):
                row.password_hash = _HASHER.hash(password)
            return _user(row)

    def get(self, user_id: int) -> User | None:
        """The user with ``user_id``, or None."""
        with Session(self.engine) as session:
            row = session.get(_UserRow, int(user_id))
            return None if row is None else _user(row)

    def find(self, username: str) -> User | None:
        """The user named ``username``, or None."""
        with Session(self.engine) as session:
            row = session.scalars(select(_UserRow).where(_UserRow.username == username)).first()
            return None if row is None else _user(row)

    def list(self) -> list[User]:
        """All users, oldest first."""
        with Session(self.engine) as session:
            return [_user(r) for r in session.scalars(select(_UserRow).order_by(_UserRow.id))]

    def set_role(self, user_id: int, role: str) -> bool:
        """Change a user's role (effective from their next login or refresh); False when
        no such user.

        Raises:
            ValueError: unknown role.
        """
        check_role(role)
        return self._update(user_id, role=role)

    def set_disabled(self, user_id: int, disabled: bool) -> bool:
        """Disable (no login, no refresh) or re-enable a user; False when no such user."""
        return self._update(user_id, disabled=bool(disabled))

    def _update(self, user_id: int, **values: object) -> bool:
        with Session(self.engine) as session, session.begin():
            result = session.execute(update(_UserRow).where(_UserRow.id == int(user_id))
                                     .values(**values))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- TOTP -------------------------------------------------------------------------------

    def begin_totp(self, user_id: int) -> tuple[str, str]:
        """A new pending TOTP secret; returns it and its ``otpauth://`` URI (for a QR code).

        Replaces any pending secret; an enabled second factor stays on until confirmed
        again with the new secret.

        Raises:
            ApiError: 404 no such user, 409 TOTP is already on.
        """
        secret = pyotp.random_base32()
        with Session(self.engine) as session, session.begin():
            row = session.get(_UserRow, int(user_id))
            if row is None:
                raise ApiError(404, "not_found", f"no user {user_id}")
            if row.totp_enabled:
                raise ApiError(409, "conflict", "TOTP is already enabled for this user")
            row.totp_secret = secret
            uri = pyotp.TOTP(secret).provisioning_uri(name=row.username,
                                                      issuer_name=TOTP_ISSUER)
        return secret, uri

    def confirm_totp(self, user_id: int, code: str) -> bool:
        """Turn TOTP on when ``code`` is current for the pending secret; False otherwise.

        Raises:
            ApiError: 404 no such user, 409 no enrolment is pending.
        """
        with Session(self.engine) as session, session.begin():
            row = session.get(_UserRow, int(user_id))
            if row is None:
                raise ApiError(404, "not_found", f"no user {user_id}")
            if row.totp_enabled or not row.totp_secret:
                raise ApiError(409, "conflict", "no TOTP enrolment is pending: call "
                               "POST /api/v1/auth/totp/enroll first", fields=["code"])
            if not self._accept_code(row, code):
                return False
            row.totp_enabled = True
            return True

    def verify_totp(self, user_id: int, code: str | None) -> bool:
        """Whether ``code`` is a current, not yet used code of the user's enabled TOTP."""
        if not code:
            return False
        with Session(self.engine) as session, session.begin():
            row = session.get(_UserRow, int(user_id))
            if row is None or not row.totp_enabled:
                return False
            return self._accept_code(row, code)

    @staticmethod
    def _accept_code(row: _UserRow, code: str, now: float | None = None) -> bool:
        """Check ``code`` against the row's secret (±1 step) and burn its step."""
        assert row.totp_secret is not None
        totp = pyotp.TOTP(row.totp_secret)
        current = int((time.time() if now is None else now) // totp.interval)
        for step in (current - 1, current, current + 1):
            if step > row.totp_last_step and hmac.compare_digest(
                    totp.generate_otp(step), code.strip()):
                row.totp_last_step = step
                return True
        return False


__all__ = ["ROLES", "ROLE_SCOPES", "User", "UserStore", "check_credentials", "check_role"]
