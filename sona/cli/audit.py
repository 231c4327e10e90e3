"""``sona audit``: query the serving and catalog audit logs (who did what, when)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sona.cli import app


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    try:  # the HTTP route's parsing: ISO-8601 or Unix seconds
        return TypeAdapter(datetime).validate_python(value)
    except ValidationError:
        raise typer.BadParameter(f"{value!r}: give ISO-8601 (2026-12-04T10:00:00Z) or Unix "
                                 "seconds", param_hint=option) from None


@app.command("audit")
def audit(
    config: Annotated[Path | None, typer.Option(
        help="Serving YAML whose databases are read (default: $SONA_SERVING_CONFIG, else "
             "the serving defaults: serving/sona.db and the catalog next to it).")] = None,
    actor: Annotated[str | None, typer.Option(
        help="Who acted: a user id or key:<api key id>.")] = None,
    action: Annotated[str | None, typer.Option(
        help="Action, e.g. content_updated, model_swapped, admin_action.")] = None,
    resource_type: Annotated[str | None, typer.Option(
        help="Resource type, e.g. content, model, api_key.")] = None,
    resource_id: Annotated[str | None, typer.Option(help="One resource's id.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Earliest time, inclusive (ISO-8601; no zone = UTC; or Unix seconds).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Latest time, exclusive (same formats as --since).")] = None,
    limit: Annotated[int, typer.Option(help="Most rows shown (1-1000).")] = 100,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the rows as a JSON array instead of a table.")] = False,
) -> None:
    """Audit rows matching every given filter, newest first.

    Reads the same two logs as GET /api/v1/admin/audit: the serving log (model swaps and
    reloads, API keys, experiment changes) and the catalog's (content created, updated,
    deleted), and merges them by time. No server needs to run.
    """
    from pydantic import ValidationError

    from sona.catalog.store import CatalogStore
    from sona.db import sqlite_url
    from sona.errors import ConfigError
    from sona.serving.app import load_serving_config
    from sona.serving.audit import AuditFilter, AuditLog, query_audit
    from sona.serving.catalog_http import catalog_url

    try:
        query = AuditFilter(actor=actor, action=action, resource_type=resource_type,
                            resource_id=resource_id, since=_time(since, "--since"),
                            until=_time(until, "--until"), limit=limit)
    except ValidationError as exc:
        raise ConfigError("; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}"
                                    if e["loc"] else e["msg"] for e in exc.errors())) from None
    settings = load_serving_config(config)
    catalog = CatalogStore(catalog_url(settings.catalog, settings.database))
    try:
        entries = query_audit(AuditLog(sqlite_url(settings.database)), catalog, query)
    finally:
        catalog.close()
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    table = Table(title=f"{len(entries)} audit row(s), newest first")
    for column in ("time (UTC)", "log", "actor", "action", "resource", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        resource = e.resource_type + (f"/{e.resource_id}" if e.resource_id else "")
        table.add_row(e.timestamp.strftime("%Y-%m-%d %H:%M:%S"), e.log, e.actor or "-",
                      e.action, resource, json.dumps(e.details, default=str)[:120])
    Console().print(table)


__all__ = ["audit"]
