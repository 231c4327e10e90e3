"""``sona sweep CONFIG``: optuna searches declared in an experiment YAML's ``sweeps:``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sona.cli import app

_HELP = (
    "Tune models of CONFIG (an experiment YAML) with optuna's seeded TPE sampler over the "
    "search spaces of its `sweeps:` section.\n\n"
    "Each trial fits on a validation split carved from the training split (per user, "
    "sweeps[i].validation_ratio) and is scored by validation nDCG@k (sweeps[i].metric); "
    "the test split is only used to report the best parameters once, refitted on train. "
    "Every trial is a nested MLflow run under one parent run per sweep (unless --no-track); "
    "results go to <results_dir>/<name>-sweep-<model>.md and .json.\n\n"
    "Examples:\n\n"
    "sona sweep experiments/ml100k-sweeps.yaml                      (every sweep)\n\n"
    "sona sweep experiments/ml100k-sweeps.yaml --model ease --trials 10"
)


@app.command("sweep", help=_HELP)
def sweep_command(
    config: Annotated[Path, typer.Argument(help="experiment YAML with a sweeps: section")],
    models: Annotated[list[str] | None, typer.Option(
        "--model", metavar="NAME",
        help="models[].name to sweep (repeatable); default: every sweep in the file")] = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, help="trials per sweep (default: sweeps[i].trials)")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="override a YAML value (repeatable)")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    # imported here so `sona --help` stays fast (optuna, MLflow)
    from sona.errors import ConfigError
    from sona.experiments.runner import with_tracking
    from sona.experiments.spec import load_experiment
    from sona.experiments.sweep import TrialResult, run_sweep

    experiment = load_experiment(config, overrides or [])
    if no_track:
        experiment = with_tracking(experiment, False)
    names = list(models) if models else [s.model for s in experiment.sweeps]
    if not names:
        raise ConfigError(f"{config} has no sweeps: section")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    err = Console(stderr=True)
    for name in names:
        def show(t: TrialResult, name: str = name) -> None:
            if not quiet:
                err.print(f"{name} trial {t.number}: {t.params} -> {t.value:.4f} "
                          f"({t.fit_s:.1f} s)")

        result = run_sweep(experiment, name, trials=trials, on_trial=show)
        table = Table(title=f"sweep {name} ({result.registry}): best of {len(result.trials)} "
                            f"trials by validation {result.metric}@{result.k}")
        table.add_column("parameter")
        table.add_column("value")
        for key, value in result.best_params.items():
            table.add_row(key, str(value))
        table.add_row(f"validation {result.metric}@{result.k}", f"{result.best_value:.4f}")
        for metric, value in (result.test_metrics or {}).items():
            table.add_row(f"test {metric}@{result.k} (record only)", f"{value:.4f}")
        console.print(table)
        for path in result.files.values():
            console.print(f"wrote {path}")
        if result.parent_run_id:
            console.print(f"MLflow parent run {result.parent_run_id} in "
                          f"{experiment.tracking.uri}")
