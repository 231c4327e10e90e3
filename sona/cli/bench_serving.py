"""``sona bench onnx`` and ``sona bench load``: serving benchmarks (loopback, bounded)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

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
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 16,
    duration: Annotated[float, typer.Option(min=0.5, help="seconds per endpoint")] = 10.0,
    max_requests: Annotated[int, typer.Option(min=1, help="cap per endpoint")] = 20_000,
    threads: Annotated[int, typer.Option(min=1, help="server request threads")] = 4,
    out: Annotated[Path, typer.Option(help="JSON file")] = Path("benchmarks/results/load.json"),
) -> None:
    """Load-test /recommendations and /personalization/score against a trivial endpoint.

    Starts the service on a free 127.0.0.1 port, drives each endpoint with CONCURRENCY
    closed-loop clients for DURATION seconds (or MAX_REQUESTS), and prints p50/p95/p99,
    requests per second and the ratio to /api/v1/ping (the same service's ceiling) and to
    the same trivial endpoint on plain Starlette/uvicorn (measured first, same load).
    """
    from sona import io
    from sona.bench.ceiling import PING_PATH, CeilingServer
    from sona.bench.load import ratios, run_load, settle
    from sona.bench.serving_setup import bundle_config
    from sona.serving.process import ServerProcess

    path = _bundle(bundle, model, content, data_dir)
    _, _, ids = io.load_model_dir(path / "pipeline")  # the served pipeline's id indexes
    users, items = ids["user"], ids["item"]

    def recs(rng):  # type: ignore[no-untyped-def]
        return {"user_id": str(users[rng.integers(len(users))]), "limit": 20}

    def score(rng):  # type: ignore[no-untyped-def]
        return {"user_id": str(users[rng.integers(len(users))]),
                "content_id": str(items[rng.integers(len(items))])}

    cases = [("ping", "/api/v1/ping", lambda rng: {}),
             ("recommendations", "/api/v1/recommendations", recs),
             ("personalization/score", "/api/v1/personalization/score", score)]
    with CeilingServer() as plain:  # same generator and concurrency, before BentoML starts
        starlette = run_load(plain.url, PING_PATH, lambda rng: {}, concurrency=concurrency,
                             duration_s=duration, max_requests=max_requests,
                             name="starlette ceiling")
    with tempfile.TemporaryDirectory(prefix="sona-load-") as tmp:
        config = bundle_config(path, tmp, threads=threads)
        with ServerProcess(config) as server:
            settle(server.url, [(p, body) for _, p, body in cases], concurrency=concurrency)
            stats = [run_load(server.url, p, body, concurrency=concurrency, duration_s=duration,
                              max_requests=max_requests, name=name) for name, p, body in cases]
    to_ping, to_plain = ratios(stats, stats[0]), ratios(stats, starlette)
    table = Table(title=f"loopback load, {concurrency} in flight, {duration:g} s per endpoint "
                        f"({path})")
    for col in ("endpoint", "requests", "errors", "RPS", "p50 ms", "p95 ms", "p99 ms",
                "RPS / ping", "RPS / starlette"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")

    def fmt(ratio: float | None) -> str:
        return "-" if ratio is None else f"{ratio:.2f}"

    for s in [starlette, *stats]:
        table.add_row(s.endpoint, str(s.n_requests), str(s.n_errors), f"{s.rps:.0f}",
                      f"{s.p50_ms:.2f}", f"{s.p95_ms:.2f}", f"{s.p99_ms:.2f}",
                      fmt(to_ping.get(s.endpoint)),
                      fmt(to_plain.get(s.endpoint, 1.0 if s is starlette else None)))
    Console().print(table)
    io.write_json(out, {"bundle": str(path), "concurrency": concurrency, "duration_s": duration,
                        "threads": threads, "results": [s.to_dict() for s in stats],
                        "ratio_to_ping": to_ping, "starlette_ceiling": starlette.to_dict(),
                        "ratio_to_starlette": to_plain})
