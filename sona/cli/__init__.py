"""The ``sona`` command line. Each sub-command group lives in its own module.

Errors SONA raises on purpose (:class:`~sona.errors.SonaError`) print as one line on
stderr and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from sona.errors import SonaError

app = typer.Typer(
    name="sona",
    help=(
        "SONA: train, compare, serve and A/B-test recommenders.\n\n"
        "Start with `sona data fetch` then `sona run experiments/ml100k-baselines.yaml`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # sub-command modules attach themselves to `app`; import order sets --help order
    from sona.cli import (  # noqa: F401
        ab,
        audit,
        bench,
        bench_cold,
        bench_events,
        bench_lora,
        bench_overhead,
        bench_scaling,
        bench_search,
        bench_serving,
        data,
        events,
        ingest,
        mcp,
        search,
        serve,
        sweep,
        users,
    )

    for optional in ("sona.cli.run",):
        try:
            __import__(optional)
        except ModuleNotFoundError as exc:  # only tolerate the module itself being absent
            if exc.name != optional:
                raise


def main() -> None:
    """Entry point of the ``sona`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    try:
        app()
    except SonaError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
