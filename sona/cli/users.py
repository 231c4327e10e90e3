"""``sona users ...``: API users in the serving database (create, list, set-role, disable).

Registration over HTTP (``POST /api/v1/auth/register``) always gives the configured default
role; administrators and premium users are made here, by whoever runs the server.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from sona.cli import app
from sona.cli.serve import ConfigOpt, _serving

if TYPE_CHECKING:
    from sona.serving.users import UserStore

users_app = typer.Typer(help="API users (JWT login): create, list, set-role, disable, enable.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

RoleOpt = Annotated[str, typer.Option("--role", help="free_user, premium_user or admin")]


def _store(config: ConfigOpt) -> UserStore:
    from sona.db import sqlite_url
    from sona.serving.users import UserStore

    return UserStore(sqlite_url(_serving(config).database))


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="3-64 letters, digits and _.@-")],
    role: RoleOpt = "free_user",
    password: Annotated[str | None, typer.Option(
        "--password", help="the password (prompted, hidden, when not given)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user with a role (the password is stored only as an argon2 hash)."""
    from sona.serving.errors import ApiError
    from sona.serving.users import check_role

    try:
        check_role(role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    secret = password if password is not None else getpass.getpass("password: ")
    store = _store(config)
    try:
        user = store.register(username, secret, role=role)
    except ApiError as exc:
        raise typer.BadParameter(exc.message, param_hint=", ".join(
            exc.details.get("fields", [])) or None) from None
    typer.echo(f"user {user.user_id} {user.username}: {user.role} "
               f"({', '.join(user.scopes)})")


@users_app.command("list")
def users_list(config: ConfigOpt = None) -> None:
    """List users: id, name, role, TOTP, state."""
    store = _store(config)
    for user in store.list():
        state = "disabled" if user.disabled else "active"
        totp = "totp" if user.totp_enabled else "-"
        typer.echo(f"{user.user_id}\t{user.username}\t{user.role}\t{totp}\t{state}")


def _by_name(config: ConfigOpt, username: str) -> tuple[UserStore, int]:
    store = _store(config)
    user = store.find(username)
    if user is None:
        typer.echo(f"no user named {username!r}", err=True)
        raise typer.Exit(1)
    return store, user.user_id


@users_app.command("set-role")
def users_set_role(username: Annotated[str, typer.Argument(help="the user's name")],
                   role: Annotated[str, typer.Argument(
                       help="free_user, premium_user or admin")],
                   config: ConfigOpt = None) -> None:
    """Change a user's role (effective at their next login or token refresh)."""
    from sona.serving.users import check_role

    try:
        check_role(role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="ROLE") from None
    store, user_id = _by_name(config, username)
    store.set_role(user_id, role)
    typer.echo(f"{username}: {role}")


def _set_disabled(config: ConfigOpt, username: str, disabled: bool) -> None:
    store, user_id = _by_name(config, username)
    store.set_disabled(user_id, disabled)
    typer.echo(f"{username}: {'disabled' if disabled else 'enabled'}")


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="the user's name")],
                  config: ConfigOpt = None) -> None:
    """Disable a user: no login and no refresh (access tokens lapse within their TTL)."""
    _set_disabled(config, username, True)


@users_app.command("enable")
def users_enable(username: Annotated[str, typer.Argument(help="the user's name")],
                 config: ConfigOpt = None) -> None:
    """Enable a disabled user again."""
    _set_disabled(config, username, False)
