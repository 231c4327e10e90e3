"""``sona bench cold-start``: cold-user tiers and cold-item content scorers on ML-100K."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

_ML100K = Path("datasets/ml-100k")
_OUT = Path("benchmarks/results/cold_start.json")


@bench_app.command("cold-start")
def cold_start(
    data: Annotated[Path, typer.Option(help="ML-100K folder (sona data fetch).")] = _ML100K,
    out: Annotated[Path, typer.Option(help="JSON file to write.")] = _OUT,
    fraction: Annotated[float, typer.Option(
        min=0.01, max=0.99, help="Share of users (items) held out.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the cold split.")] = 42,
    k: Annotated[int, typer.Option(min=1, help="List length and metric cut-off.")] = 10,
) -> None:
    """Evaluate SPEC 2.8 cold start on held-out users and held-out items.

    Cold users: each SPEC tier (popularity, trending, demographic segments, signup genres
    simulated from the first 5 events) on the users' remaining events. Cold items: users
    rank the held-out items from text embeddings (MiniLM, TF-IDF) or genres vs random.
    """
    from sona import io
    from sona.data.sources import load_ml100k
    from sona.experiments.cold_start import (
        ColdEvalConfig,
        evaluate_cold_items,
        evaluate_cold_users,
    )

    ml = load_ml100k(data)
    config = ColdEvalConfig(fraction=fraction, seed=seed, k=k)
    users = evaluate_cold_users(ml, config)
    items = evaluate_cold_items(ml, config)
    console = Console()
    for title, rows in ((f"cold users ({fraction:.0%} held out, ranked over the catalogue)",
                         users),
                        (f"cold items ({fraction:.0%} held out, ranked among them)", items)):
        table = Table(title=title)
        table.add_column("method")
        for metric in ("ndcg", "precision", "recall", "map"):
            table.add_column(f"{metric}@{k}", justify="right")
        table.add_column("users", justify="right")
        for name, values in rows.items():
            table.add_row(name, *(f"{values[m]:.4f}" for m in ("ndcg", "precision", "recall",
                                                                "map")),
                          f"{int(values['n_users'])}")
        console.print(table)
    io.write_json(out, {"config": {"fraction": fraction, "seed": seed, "k": k,
                                   "onboarding_events": config.onboarding_events,
                                   "signup_genres": config.signup_genres},
                        "cold_users": users, "cold_items": items})
    console.print(f"wrote {out}")
