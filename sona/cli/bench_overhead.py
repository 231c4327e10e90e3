"""``sona bench overhead``: SONA's ALS pipeline against a raw implicit loop on ML-100K."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

_ML100K = Path("datasets/ml-100k")
_OUT = Path("benchmarks/results/overhead.json")


@bench_app.command("overhead")
def overhead(
    data: Annotated[Path, typer.Option(help="ML-100K folder (sona data fetch).")] = _ML100K,
    out: Annotated[Path, typer.Option(help="JSON file to write.")] = _OUT,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per pipeline.")] = 5,
    k: Annotated[int, typer.Option(min=1, help="List length and nDCG cut-off.")] = 10,
    n_threads: Annotated[int, typer.Option(
        min=0, help="implicit threads for both sides (0 = all cores; 1 is steadiest).")] = 1,
) -> None:
    """Time fit / recommend / nDCG of SONA's ALS against raw implicit, same split and seed.

    Stratified 75/25 split per user (seed 42), default ALS hyper-parameters. Set
    OPENBLAS_NUM_THREADS=1 for stable timings.
    """
    import dataclasses

    from sona import io
    from sona.bench.overhead import STAGES, run_overhead
    from sona.data.sources import load_ml100k
    from sona.data.splits import stratified_split
    from sona.models.als import ALSConfig

    split = stratified_split(load_ml100k(data).interactions, 0.75, by="user", seed=42)
    config = dataclasses.replace(ALSConfig(), n_threads=n_threads)
    result = run_overhead(split.train, split.test, config=config, k=k, repeats=repeats)
    sona_s, raw_s, ratio = result.medians("sona"), result.medians("implicit"), result.ratios()

    table = Table(title=f"SONA vs raw implicit: ALS on ML-100K train "
                        f"({result.n_users} users x {result.n_items} items, "
                        f"median of {repeats})")
    table.add_column("stage")
    table.add_column("sona s", justify="right")
    table.add_column("implicit s", justify="right")
    table.add_column("ratio", justify="right")
    for stage in (*STAGES, "total"):
        style = "bold" if stage == "total" else None
        table.add_row(stage, f"{sona_s[stage]:.4f}", f"{raw_s[stage]:.4f}",
                      f"{ratio[stage]:.2f}", style=style)
    console = Console()
    console.print(table)
    console.print(f"nDCG@{k}: sona {result.ndcg['sona']:.4f}, "
                  f"implicit {result.ndcg['implicit']:.4f}")
    env = result.meta["environment"]
    load = env["load_avg_1min"]
    console.print(f"{env['cpu_count']} CPUs, 1-min load average {load['before']:.1f} before, "
                  f"{load['after']:.1f} after (a busy machine makes ratios noisy)")
    io.write_json(out, result.to_dict())
    console.print(f"wrote {out}")
