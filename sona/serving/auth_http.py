"""HTTP routes of users and tokens: register, login, refresh, logout, TOTP, me (SPEC §5).

Mounted by ``serving/service.py`` like the other Starlette apps; every route parses its
pydantic body, then runs inside ``SonaApp.dispatch`` on a worker thread (argon2 and SQL
block), so statuses, error bodies and request metrics are those of every other endpoint.
Each event lands in the audit log (``auth_register``, ``auth_login``,
``auth_login_failed``, ``auth_refresh_reused``, ``auth_logout``, ``auth_totp_enabled``).

Routes (credentials): ``POST /api/v1/auth/register`` (none; 201) a user with the default
role; ``POST /api/v1/auth/login`` (none) user name, password and, once TOTP is on, the
current code -> access + refresh token; ``POST /api/v1/auth/refresh`` (the refresh token
in the body) -> a new pair, the old refresh token spent; ``POST /api/v1/auth/logout``
(access token) revokes the session's token family; ``POST /api/v1/auth/totp/enroll``
(access token) -> a pending secret and its ``otpauth://`` URI; ``POST
/api/v1/auth/totp/confirm`` (access token) the current code turns TOTP on; ``GET
/api/v1/auth/me`` (access token) the user.

OAuth sign-in with external providers (Google, Apple, ...) needs their servers on the
internet and is out of scope: SONA runs offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sona.serving.access import AUTH_PREFIX
from sona.serving.asgi import parse_body
from sona.serving.auth import api_key_from_headers
from sona.serving.errors import ApiError
from sona.serving.identity import Principal
from sona.serving.routing import Operation, api_route
from sona.serving.tokens import TokenPair
from sona.serving.users import MAX_PASSWORD, User

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

_STRICT = ConfigDict(extra="forbid", regex_engine="python-re")


class RegisterRequest(BaseModel):
    """``POST /api/v1/auth/register`` body."""

    model_config = _STRICT
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
                          description="3-64 letters, digits and _.@-")
    password: str = Field(min_length=8, max_length=MAX_PASSWORD)


class LoginRequest(BaseModel):
    """``POST /api/v1/auth/login`` body."""

    model_config = _STRICT
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    totp_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$",
                                  description="current 6-digit code, once TOTP is enabled")


class RefreshRequest(BaseModel):
    """``POST /api/v1/auth/refresh`` body."""

    model_config = _STRICT
    refresh_token: str = Field(min_length=1, max_length=4096)


class TotpConfirmRequest(BaseModel):
    """``POST /api/v1/auth/totp/confirm`` body."""

    model_config = _STRICT
    code: str = Field(pattern=r"^[0-9]{6}$", description="current 6-digit code")


class UserResponse(BaseModel):
    """A user (never the password hash or TOTP secret)."""

    user_id: int
    username: str
    role: str
    scopes: list[str]
    totp_enabled: bool
    created_at: float = Field(description="unix seconds")


class TokenResponse(BaseModel):
    """An access + refresh token pair (OAuth 2 token response field names)."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_expires_in: int = Field(description="seconds until the refresh token expires")
    scope: str = Field(description="space-separated scopes of the access token")


class LogoutResponse(BaseModel):
    """``POST /api/v1/auth/logout`` answer."""

    revoked: bool = Field(description="the session's tokens are revoked")


class TotpEnrollResponse(BaseModel):
    """A pending TOTP secret (confirm it with a current code to turn TOTP on)."""

    secret: str = Field(description="base32 secret for an authenticator app")
    otpauth_uri: str = Field(description="otpauth:// URI (encode as a QR code)")


class TotpConfirmResponse(BaseModel):
    """``POST /api/v1/auth/totp/confirm`` answer."""

    totp_enabled: bool


def _user(user: User) -> UserResponse:
    return UserResponse(user_id=user.user_id, username=user.username, role=user.role,
                        scopes=list(user.scopes), totp_enabled=user.totp_enabled,
                        created_at=user.created_at)


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in, refresh_expires_in=pair.refresh_expires_in,
                         scope=" ".join(pair.scopes))


def require_user(app: SonaApp, headers: dict[str, str]) -> Principal:
    """The user behind the request's access token.

    Raises:
        ApiError: 401 no or an invalid token, 403 an API key (keys are services, not users).
    """
    credential = api_key_from_headers(headers)
    principal = app.auth.verify(credential) if credential else None
    if principal is None:
        raise ApiError(401, "unauthorized", "send a user's access token: "
                       "'Authorization: Bearer <access_token>' from POST /api/v1/auth/login")
    if principal.kind != "user":
        raise ApiError(403, "forbidden", "this route acts on a user: an API key is not one")
    return principal


def auth_routes(get_app: Callable[[], SonaApp]) -> Starlette:
    """The Starlette app of the routes above, bound to the running :class:`SonaApp`."""

    async def run(request: Request, endpoint: str, call: Callable[[SonaApp], Any],
                  created: int = 200) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(app.dispatch, endpoint, lambda: call(app))
        return JSONResponse(body, status_code=created if status == 200 else status)

    def audit(app: SonaApp, request: Request, action: str, user_id: int | str | None,
              **details: Any) -> None:
        app.audit.record(action, "user", None if user_id is None else str(user_id),
                         details=details or None,
                         user_id=None if user_id is None else f"user:{user_id}",
                         ip=request.client.host if request.client else None,
                         user_agent=request.headers.get("user-agent"))

    async def register(request: Request) -> JSONResponse:
        body = await parse_body(request, RegisterRequest)
        if isinstance(body, JSONResponse):
            return body
        req: RegisterRequest = body  # type: ignore[assignment]

        def call(app: SonaApp) -> UserResponse:
            if not app.config.auth.open_registration:
                raise ApiError(403, "forbidden", "registration is closed on this server: "
                               "an administrator creates users with `sona users create`")
            user = app.users.register(req.username, req.password,
                                      role=app.config.auth.default_role)
            audit(app, request, "auth_register", user.user_id, username=user.username)
            return _user(user)

        return await run(request, "auth_register", call, created=201)

    async def login(request: Request) -> JSONResponse:
        body = await parse_body(request, LoginRequest)
        if isinstance(body, JSONResponse):
            return body
        req: LoginRequest = body  # type: ignore[assignment]

        def call(app: SonaApp) -> TokenResponse:
            try:
                pair = app.tokens.login(req.username, req.password, req.totp_code)
            except ApiError as exc:
                found = app.users.find(req.username)
                audit(app, request, "auth_login_failed", found.user_id if found else None,
                      username=req.username, reason=exc.error)
                raise
            claims = app.tokens.verify_access(pair.access_token)
            audit(app, request, "auth_login", claims.user_id if claims else None)
            return _tokens(pair)

        return await run(request, "auth_login", call)

    async def refresh(request: Request) -> JSONResponse:
        body = await parse_body(request, RefreshRequest)
        if isinstance(body, JSONResponse):
            return body
        req: RefreshRequest = body  # type: ignore[assignment]

        def call(app: SonaApp) -> TokenResponse:
            try:
                return _tokens(app.tokens.refresh(req.refresh_token))
            except ApiError as exc:
                if exc.error == "refresh_token_reused":
                    audit(app, request, "auth_refresh_reused", None)
                raise

        return await run(request, "auth_refresh", call)

    async def logout(request: Request) -> JSONResponse:
        headers = dict(request.headers)

        def call(app: SonaApp) -> LogoutResponse:
            user = require_user(app, headers)
            assert user.family is not None
            app.tokens.revoke_family(user.family)
            audit(app, request, "auth_logout", user.subject)
            return LogoutResponse(revoked=True)

        return await run(request, "auth_logout", call)

    async def enroll(request: Request) -> JSONResponse:
        headers = dict(request.headers)

        def call(app: SonaApp) -> TotpEnrollResponse:
            user = require_user(app, headers)
            secret, uri = app.users.begin_totp(int(user.subject))
            return TotpEnrollResponse(secret=secret, otpauth_uri=uri)

        return await run(request, "auth_totp_enroll", call)

    async def confirm(request: Request) -> JSONResponse:
        headers = dict(request.headers)
        body = await parse_body(request, TotpConfirmRequest)
        if isinstance(body, JSONResponse):
            return body
        req: TotpConfirmRequest = body  # type: ignore[assignment]

        def call(app: SonaApp) -> TotpConfirmResponse:
            user = require_user(app, headers)
            if not app.users.confirm_totp(int(user.subject), req.code):
                raise ApiError(400, "invalid_totp", "code: not the current code of the "
                               "pending secret", fields=["code"])
            audit(app, request, "auth_totp_enabled", user.subject)
            return TotpConfirmResponse(totp_enabled=True)

        return await run(request, "auth_totp_confirm", call)

    async def me(request: Request) -> JSONResponse:
        headers = dict(request.headers)

        def call(app: SonaApp) -> UserResponse:
            principal = require_user(app, headers)
            user = app.users.get(int(principal.subject))
            if user is None:
                raise ApiError(401, "unauthorized", "the user of this token no longer exists")
            return _user(user)

        return await run(request, "auth_me", call)

    tag = "auth"
    return Starlette(routes=[
        api_route(AUTH_PREFIX + "/register", register, Operation(
            "POST", "Create a user with the default role", operation_id="auth_register",
            body=RegisterRequest, response=UserResponse, status=201, errors=(403, 409),
            tag=tag)),
        api_route(AUTH_PREFIX + "/login", login, Operation(
            "POST", "Log in: access and refresh token (TOTP code once enabled)",
            operation_id="auth_login", body=LoginRequest, response=TokenResponse,
            errors=(401,), tag=tag)),
        api_route(AUTH_PREFIX + "/refresh", refresh, Operation(
            "POST", "Rotate a refresh token: a new pair in the same family",
            operation_id="auth_refresh", body=RefreshRequest, response=TokenResponse,
            errors=(401,), tag=tag)),
        api_route(AUTH_PREFIX + "/logout", logout, Operation(
            "POST", "Revoke the session's tokens (the access token's family)",
            operation_id="auth_logout", response=LogoutResponse, scope="read", tag=tag)),
        api_route(AUTH_PREFIX + "/totp/enroll", enroll, Operation(
            "POST", "Start TOTP enrolment: a pending secret and its otpauth URI",
            operation_id="auth_totp_enroll", response=TotpEnrollResponse, scope="read",
            errors=(409,), tag=tag)),
        api_route(AUTH_PREFIX + "/totp/confirm", confirm, Operation(
            "POST", "Confirm TOTP with a current code; logins then need a code",
            operation_id="auth_totp_confirm", body=TotpConfirmRequest,
            response=TotpConfirmResponse, scope="read", errors=(409,), tag=tag)),
        api_route(AUTH_PREFIX + "/me", me, Operation(
            "GET", "The user behind the access token", operation_id="auth_me",
            response=UserResponse, scope="read", tag=tag)),
    ])


__all__ = [
    "LoginRequest", "LogoutResponse", "RefreshRequest", "RegisterRequest",
    "TokenResponse", "TotpConfirmRequest", "TotpEnrollResponse", "UserResponse",
    "auth_routes", "require_user",
]
