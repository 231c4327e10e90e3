"""``sona bench``: benchmarks that print a table and write JSON."""

from __future__ import annotations

import typer

from sona.cli import app

bench_app = typer.Typer(help="Benchmarks: each prints a table and writes JSON under "
                             "benchmarks/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
