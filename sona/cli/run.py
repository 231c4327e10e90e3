"""``sona run CONFIG``: train, evaluate and compare the models of an experiment YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sona.cli import app

_HELP = (
    "Run the experiment described by CONFIG (a YAML file) and print its leaderboard.\n\n"
    "Precedence, later wins: dataclass defaults < the YAML file < --set overrides. A --set "
    "key is a dotted path into the YAML (list items by index); its value is parsed as YAML, "
    "so numbers, booleans and lists keep their types. Unknown keys and unknown model "
    "parameters are errors that list the valid names.\n\n"
    "Each run logs to MLflow unless --no-track (a parent run plus one child run per model: "
    "params, metrics, git SHA, dataset md5s, the saved model directory) and writes the "
    "leaderboard to <results_dir>/<name>.md and .json.\n\n"
    "Example (EASE is models.4 in that file):\n\n"
    "sona run experiments/ml100k-baselines.yaml --set split.seed=7 --set models.4.params.l2=300"
    "\n\nSchema: experiments/README.md. Tracking store: mlflow/README.md (make mlflow-ui)."
)


@app.command("run", help=_HELP)
def run_command(
    config: Annotated[Path, typer.Argument(
        help="experiment YAML, e.g. experiments/ml100k-baselines.yaml")],
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="override a YAML value (repeatable), e.g. --set split.seed=7")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="do not log to MLflow")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    # imported here so `sona --help` stays fast (the runner imports MLflow)
    from sona.experiments.leaderboard import leaderboard_table
    from sona.experiments.runner import run_experiment, with_tracking
    from sona.experiments.spec import load_experiment

    experiment = load_experiment(config, overrides or [])
    if no_track:
        experiment = with_tracking(experiment, False)
    result = run_experiment(experiment, progress=not quiet)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(leaderboard_table(result))
    if result.comparison is not None:
        c = result.comparison
        console.print(
            f"{c.a} vs {c.b}: {c.metric}@{experiment.k} difference {c.mean_diff:+.4f}, "
            f"{c.confidence:.0%} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], Wilcoxon p = "
            f"{c.wilcoxon_p:.3g} ({'significant' if c.significant else 'not significant'})"
        )
    for path in result.files.values():
        console.print(f"wrote {path}")
    if result.parent_run_id:
        console.print(f"MLflow run {result.parent_run_id} in {experiment.tracking.uri} "
                      "(make mlflow-ui)")
