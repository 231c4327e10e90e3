"""``sona bench scaling`` (implicit vs Spark ALS) and ``sona bench ann`` (faiss vs exact)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

_SCALING_OUT = Path("benchmarks/results/scaling.json")
_ANN_OUT = Path("benchmarks/results/ann.json")


def _ints(text: str, name: str) -> tuple[int, ...]:
    """Parse "100K,1M,10M" / "100000,1000000" into integers."""
    out = []
    for part in text.split(","):
        token = part.strip().upper().replace("_", "")
        scale = {"K": 1_000, "M": 1_000_000}.get(token[-1:], 1)
        digits = token[:-1] if scale > 1 else token
        try:
            value = int(float(digits) * scale)
        except ValueError as exc:
            raise typer.BadParameter(f"{name}: cannot read {part!r} as a number") from exc
        if value < 1:
            raise typer.BadParameter(f"{name}: {part!r} must be positive")
        out.append(value)
    return tuple(out)


def _console() -> Console:
    """Rich console; wide when piped (rich assumes 80 columns and would truncate the table)."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def scaling_table(report: dict[str, Any]) -> Table:
    """The scaling report as a rich table (one row per engine and size)."""
    table = Table(title="ALS scaling: implicit (one process) vs Spark "
                        f"{report['config']['master']}")
    for col in ("rows", "engine", "status", "JVM start s", "load s", "fit s", "top-k s",
                "metrics s", "total s", "python peak MiB", "JVM peak MiB", "nDCG@10"):
        table.add_column(col, justify="right")
    for row in report["rows"]:
        ph = row.get("phases", {})
        table.add_row(f"{row['n_interactions']:,}", row["engine"], row.get("status", "?"),
                      _fmt(ph.get("session_s")), _fmt(ph.get("load_s")), _fmt(ph.get("fit_s")),
                      _fmt(ph.get("topk_s")), _fmt(ph.get("metrics_s")), _fmt(row.get("wall_s")),
                      _fmt(row.get("python_peak_mib"), ".0f"),
                      _fmt(row.get("children_peak_mib") or None, ".0f"),
                      _fmt(row.get("metrics", {}).get("ndcg"), ".4f"))
    return table


@bench_app.command("scaling")
def scaling(
    sizes: Annotated[str, typer.Option(help="Interaction counts, e.g. 100K,1M,10M.")]
    = "100K,1M,10M",
    engines: Annotated[str, typer.Option(help="implicit, spark or both.")] = "implicit,spark",
    master: Annotated[str, typer.Option(help="Spark master URL.")] = "local[2]",
    timeout: Annotated[float, typer.Option(min=10, help="Seconds allowed per step.")] = 480.0,
    driver_memory: Annotated[str, typer.Option(help="Spark driver heap.")] = "6g",
    work_dir: Annotated[str, typer.Option(help="Cache of generated parquet splits.")]
    = "datasets/cache/scaling",
    out: Annotated[Path, typer.Option(help="JSON file to write.")] = _SCALING_OUT,
    seed: Annotated[int, typer.Option(help="Data, split and ALS seed.")] = 42,
) -> None:
    """Wall time and peak memory of ALS fit + top-10 + metrics: implicit vs Spark.

    Each (engine, size) step runs in its own process, limited to --timeout seconds (a step
    past it is recorded as a timeout with the phases it finished).
    """
    from sona import io
    from sona.bench.scaling import ScalingConfig, run_scaling

    config = ScalingConfig(sizes=_ints(sizes, "sizes"),
                           engines=tuple(e.strip() for e in engines.split(",") if e.strip()),
                           master=master, timeout_s=timeout, driver_memory=driver_memory,
                           work_dir=work_dir, seed=seed)
    console = _console()

    def show(row: dict[str, Any]) -> None:
        console.print(f"{row['engine']} @ {row['n_interactions']:,}: {row.get('status')} "
                      f"in {row.get('wall_s', 0):.1f} s")

    report = run_scaling(config, on_row=show)
    console.print(scaling_table(report))
    io.write_json(out, report)
    console.print(f"wrote {out}")


def ann_table(report: dict[str, Any]) -> Table:
    """The ANN report as a rich table."""
    cfg = report["config"]
    table = Table(title=f"item index at {cfg['n_items']:,} x {cfg['dim']}: recall@{cfg['k']} "
                        "vs exact")
    for col in ("task", "kind", "knob", "build s", f"recall@{cfg['k']}", "batch ms/query",
                "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for row in report["rows"]:
        knob = ", ".join(f"{k}={v}" for k, v in (row["param"] or {}).items()) or "-"
        table.add_row(f"{row['task']} ({row['metric']})", row["kind"], knob,
                      _fmt(row["build_s"], ".1f"), _fmt(row["recall_at_k"], ".4f"),
                      _fmt(row["batch_ms_per_query"], ".3f"), _fmt(row["p50_ms"], ".3f"),
                      _fmt(row["p99_ms"], ".3f"))
    return table


@bench_app.command("ann")
def ann(
    n_items: Annotated[str, typer.Option(help="Indexed items, e.g. 1M.")] = "1M",
    queries: Annotated[int, typer.Option(min=10, help="Queries for recall/throughput.")] = 1000,
    kinds: Annotated[str, typer.Option(help="faiss kinds: ivf, hnsw.")] = "ivf,hnsw",
    tasks: Annotated[str, typer.Option(help="similar (cosine) and/or candidates (ip).")]
    = "similar,candidates",
    nlist: Annotated[int, typer.Option(min=1, help="IVF cells.")] = 4096,
    out: Annotated[Path, typer.Option(help="JSON file to write.")] = _ANN_OUT,
    seed: Annotated[int, typer.Option(help="Vector and query seed.")] = 42,
) -> None:
    """Recall@10 of faiss IVF/HNSW against exact search, build time and query latency."""
    from sona import io
    from sona.bench.ann import AnnConfig, run_ann

    config = AnnConfig(n_items=_ints(n_items, "n-items")[0], n_queries=queries, nlist=nlist,
                       kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
                       tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                       seed=seed)
    console = _console()
    report = run_ann(config, on_row=lambda row: console.print(
        f"{row['task']} {row['kind']} {row['param'] or ''}: recall {row['recall_at_k']:.4f}"))
    console.print(ann_table(report))
    io.write_json(out, report)
    console.print(f"wrote {out}")
