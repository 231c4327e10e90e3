"""``sona events``: the served event log as training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sona.cli import app

events_app = typer.Typer(help="The event log the server appends to (playback, views, "
                              "ratings): export it as an interactions dataset.",
                         no_args_is_help=True)
app.add_typer(events_app, name="events")

_DEFAULT_DB = "serving/events.db"
_DEFAULT_OUT = Path("datasets/events/interactions.parquet")


def _url(db: str) -> str:
    from sona.db import sqlite_url

    return db if "://" in db else sqlite_url(db)


@events_app.command("export")
def export(
    db: Annotated[str, typer.Option(
        help="Event log: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file "
             "(the server's default is serving/events.db).")] = _DEFAULT_DB,
    out: Annotated[Path, typer.Option(
        help="Interaction file to write (.parquet, .tsv or .csv).")] = _DEFAULT_OUT,
    with_ml100k: Annotated[bool, typer.Option(
        "--with-ml100k/--events-only",
        help="Merge with MovieLens 100K (one row per user and item).")] = False,
    data_dir: Annotated[Path, typer.Option(
        help="Folder holding ml-100k/ (sona data fetch).")] = Path("datasets"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Turn the event log into an interactions dataset an experiment can train on.

    Viewing signals (views, ratings, playback progress, completions, abandonments) become
    one row per user and item: weight = the largest SPEC engagement weight, rating = the
    latest rating, timestamp = the latest event. The file passes the same validation as
    every dataset file; point an experiment at it with
    `dataset: {name: file, path: <out>}`.
    """
    from sona.events import EventLog
    from sona.events.export import export_events

    base = None
    if with_ml100k:
        from sona.data.sources import load_ml100k

        base = load_ml100k(data_dir / "ml-100k").interactions
    if "://" not in db and not Path(db).exists():
        from sona.errors import DataError

        raise DataError("event log database not found", path=db)
    log = EventLog(_url(db))
    try:
        result = export_events(log, out, base=base, progress=progress)
    finally:
        log.close()
    console = Console()
    merged = f" + {result.n_base_rows:,} ML-100K rows" if base is not None else ""
    console.print(
        f"[green]wrote {result.path}[/green]: {result.n_rows:,} interactions "
        f"({result.n_event_rows:,} from {result.n_viewing:,} viewing events of "
        f"{result.n_events:,} logged{merged}), {result.n_users:,} users, "
        f"{result.n_items:,} items, md5 {result.md5}")
    console.print(f"train on it: dataset: {{name: file, path: {result.path}}}")
