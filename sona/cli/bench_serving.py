"""``sona bench onnx`` and ``sona bench load``: serving benchmarks (loopback, bounded)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

BundleOpt = Annotated[Path | None, typer.Option(
    "--bundle", help="exported bundle folder models/<name>/<version> (default: a demo ALS "
                     "bundle fitted on ML-100K under models/)")]
ModelOpt = Annotated[str, typer.Option("--model", help="demo bundle model (registry name)")]
ContentOpt = Annotated[str, typer.Option("--content", help="demo bundle content vectors")]
DataOpt = Annotated[Path, typer.Option("--data-dir", help="datasets folder")]


def _bundle(bundle: Path | None, model: str, content: str, data_dir: Path) -> Path:
    if bundle is not None:
        return bundle
    from sona.bench.serving_setup import demo_bundle

    return demo_bundle("models", data_dir=data_dir, model=model, content=content,
                       name=f"sona-demo-{model}-{content}")


@bench_app.command("onnx")
def onnx_command(
    bundle: BundleOpt = None, model: ModelOpt = "als", content: ContentOpt = "text",
    data_dir: DataOpt = Path("datasets"),
    batch: Annotated[list[int] | None, typer.Option("--batch", help="batch sizes")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="timed calls per case")] = 200,
    max_seconds: Annotated[float, typer.Option(help="time cap per case")] = 5.0,
    threads: Annotated[int, typer.Option(min=1, help="intra-op threads, both runtimes")] = 1,
    out: Annotated[Path, typer.Option(help="JSON file")] = Path("benchmarks/results/onnx.json"),
) -> None:
    """ONNX Runtime vs torch eager latency of each of the pipeline's graphs at batch 1 and 64."""
    from sona import io
    from sona.bench.onnx_latency import run_onnx_bench

    path = _bundle(bundle, model, content, data_dir)
    result = run_onnx_bench(path, batches=tuple(batch or (1, 64)), repeats=repeats,
                            max_seconds=max_seconds, threads=threads)
    table = Table(title=f"ONNX Runtime vs torch eager ({path}, {threads} thread(s), median)")
    for col in ("graph", "batch", "onnx ms", "torch ms", "torch/onnx", "calls", "max |diff|"):
        table.add_column(col, justify="left" if col == "graph" else "right")
    for r in result.rows:
        table.add_row(r.graph, str(r.batch), f"{r.onnx_ms:.4f}", f"{r.torch_ms:.4f}",
                      f"{r.speedup:.2f}x", str(r.n_calls), f"{r.max_abs_diff:.2g}")
    Console().print(table)
    io.write_json(out, result.to_dict())


@bench_app.command("load")
def load_command(
    bundle: BundleOpt = None, model: ModelOpt = "als", content: ContentOpt = "text",
    data_dir: DataOpt = Path("datasets"),
    connections: Annotated[list[int] | None, typer.Option(
        "--connections", "-c", help="wrk connections (repeatable; default 8 and 32)")] = None,
    duration: Annotated[float, typer.Option(min=1.0, help="measured seconds per case")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="discarded seconds before each")] = 3.0,
    endpoint: Annotated[list[str] | None, typer.Option(
        "--endpoint", "-e", help="endpoints to load (repeatable; default all: ping, livez, "
                                 "recommendations, score, similar, search_warm, search_cold, "
                                 "autocomplete)")] = None,
    soak: Annotated[float, typer.Option(
        min=0.0, help="seconds of /recommendations at the first connection count, for the "
                      "slowest request (0: skip)")] = 60.0,
    workers: Annotated[int, typer.Option(
        min=0, help="BentoML worker processes (0: one per core, the served default)")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="BentoML request threads per worker "
                                                     "(sync endpoints: search, writes)")] = 2,
    miss_share: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="share of requests for never-seen users (state cache misses)")
    ] = 0.1,
    out: Annotated[Path, typer.Option(help="JSON file")] = Path("benchmarks/results/load.json"),
) -> None:
    """Load-test the service's endpoints with wrk beside a plain Starlette ceiling.

    Starts a plain Starlette/uvicorn ping (one worker), then the BentoML service on free
    127.0.0.1 ports, and drives every endpoint with wrk (one thread) at each connection
    count: WARMUP seconds discarded, DURATION seconds measured. Prints RPS, p50/p95/p99/max,
    errors (non-2xx and socket errors), the ratio to the ceiling and the server's memory
    (RSS and PSS of all its processes); then SOAK seconds of /recommendations for the
    slowest request. Needs wrk (`apt-get install -y wrk`).
    """
    import os

    from sona import io
    from sona.bench.ceiling import CeilingServer
    from sona.bench.load import find_wrk, run_wrk, with_memory
    from sona.bench.load_cases import ENDPOINTS, ping_case, serving_cases
    from sona.bench.serving_setup import bundle_config
    from sona.data.sources.movielens import load_ml100k
    from sona.errors import SonaError
    from sona.serving.process import ServerProcess

    try:
        find_wrk()
    except SonaError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    conns = connections or [8, 32]
    n_workers = workers or (os.cpu_count() or 1)
    path = _bundle(bundle, model, content, data_dir)
    _, _, ids = io.load_model_dir(path / "pipeline")  # the served pipeline's id indexes
    titles = load_ml100k(data_dir / "ml-100k").catalog.frame["title"].tolist()
    cases = serving_cases(ids["user"], ids["item"], titles, miss_share=miss_share,
                          endpoints=endpoint or ENDPOINTS)
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []

    def measure(url: str, case: Any, c: int, pid: int | None, tag: str,
                seconds: float = duration) -> Any:
        if warmup > 0:
            run_wrk(url, case, connections=c, duration_s=warmup, salt=f"w{tag}")
        stats = with_memory(run_wrk(url, case, connections=c, duration_s=seconds,
                                    salt=f"m{tag}"), pid)
        runs.append({**stats.to_dict(), "load_avg_1min": os.getloadavg()[0]})
        return stats

    ceiling_case = ping_case()
    ceilings: dict[tuple[int, int], Any] = {}
    # one uvicorn worker: with --workers 2 uvicorn answered every request ~44 ms late on
    # this box (179 RPS), a ceiling that would flatter every ratio
    for w in (1,):
        with CeilingServer(workers=w) as plain:
            for c in conns:
                pid = plain.proc.pid if plain.proc is not None else None
                stats = measure(plain.url, ceiling_case, c, pid, f"ceil{w}{c}")
                ceilings[w, c] = stats
                runs[-1]["endpoint"] = f"starlette ceiling ({w} worker{'s' * (w > 1)})"
                runs[-1]["workers"] = w
    soak_stats = None
    with tempfile.TemporaryDirectory(prefix="sona-load-") as tmp:
        config = bundle_config(path, tmp, threads=threads, workers=n_workers)
        with ServerProcess(config) as server:
            pid = server.proc.pid if server.proc is not None else None
            for c in conns:
                for i, case in enumerate(cases):
                    measure(server.url, case, c, pid, f"{c}-{i}")
                    runs[-1]["workers"] = n_workers
            recs = [c for c in cases if c.path == "/api/v1/recommendations"]
            if soak > 0 and recs:
                soak_stats = measure(server.url, recs[0], conns[0], pid, "soak", soak)
                runs[-1]["workers"] = n_workers
                runs[-1]["soak"] = True
    for r in runs:
        base = ceilings[1, r["connections"]].rps
        r["ratio_to_ceiling"] = r["rps"] / base if not r.get("soak") and base > 0 else None
    load_after = os.getloadavg()
    table = Table(title=f"wrk, 1 thread, {duration:g} s per case after {warmup:g} s warm-up; "
                        f"{n_workers} BentoML worker(s) x {threads} thread(s); load avg "
                        f"{load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} "
                        f"cores ({path})")
    for col in ("conns", "endpoint", "requests", "errors", "RPS", "p50 ms", "p95 ms",
                "p99 ms", "max ms", "x ceiling", "RSS MiB"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for r in runs:
        ratio = r["ratio_to_ceiling"]
        table.add_row(str(r["connections"]), r["endpoint"] + (" (soak)" if r.get("soak") else ""),
                      str(r["requests"]), str(r["errors"]), f"{r['rps']:.0f}",
                      f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      f"{r['max_ms']:.1f}", "-" if ratio is None else f"{ratio:.2f}",
                      "-" if r["server_rss_mb"] is None else f"{r['server_rss_mb']:.0f}")
    Console(width=max(Console().width, 150)).print(table)
    io.write_json(out, {
        "tool": "wrk -t1 (Lua script generated by sona.bench.load)",
        "bundle": str(path), "connections": conns, "duration_s": duration,
        "warmup_s": warmup, "workers": n_workers, "threads": threads,
        "miss_share": miss_share, "soak_s": soak,
        "machine": {"cpu_count": os.cpu_count(),
                    "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
                    "load_avg_1_5_15_after": [round(x, 2) for x in load_after]},
        "cases": {c.name: c.note for c in cases},
        "results": runs,
        "soak": soak_stats.to_dict() if soak_stats is not None else None,
    })
