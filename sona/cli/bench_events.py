"""``sona bench events``: event-log throughput (store and HTTP) and kill -9 durability."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

#: the issue's target, events per second through the batched route on this box
TARGET_EVENTS_PER_S = 2000.0


@bench_app.command("events")
def events_command(
    n_events: Annotated[int, typer.Option("--events", min=100,
                                          help="events per throughput run")] = 20_000,
    batch_size: Annotated[int, typer.Option(min=1, max=1000,
                                            help="events per request / transaction")] = 100,
    threads: Annotated[int, typer.Option(min=1, help="concurrent HTTP clients")] = 4,
    events_url: Annotated[str | None, typer.Option(
        help="event log URL (e.g. postgresql+psycopg://...); default: SQLite in the "
             "work folder")] = None,
    kill: Annotated[bool, typer.Option("--kill/--no-kill",
                                       help="also kill -9 the server mid-burst")] = True,
    data_dir: Annotated[Path, typer.Option(help="datasets folder (ML-100K)")] = Path("datasets"),
    workdir: Annotated[Path | None, typer.Option(
        help="folder for the server's databases (default: a temporary one)")] = None,
    out: Annotated[Path, typer.Option(help="JSON file")] = Path(
        "benchmarks/results/events.json"),
) -> None:
    """Batched appends into the event log, directly and through POST /api/v1/events/log of a
    real server on 127.0.0.1, then kill -9 during a burst: every acknowledged event must be
    in the log afterwards.

    The server is a demo ALS bundle on ML-100K (genre content vectors); events are batches
    of one viewer's playback, view, rating and search events on ML-100K titles, and the
    viewing ones update the viewer's profile live. Figures are noisy on a shared box: the
    load average is recorded with them.
    """
    from sona import io
    from sona.bench.events import bench_http, bench_store, kill_during_burst, synthetic_batches
    from sona.bench.serving_setup import bundle_config, demo_bundle
    from sona.db import sqlite_url
    from sona.serving.auth import KeyStore
    from sona.serving.process import ServerProcess

    console = Console()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sona-bench-events-") as tmp:
        work = (workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        bundle = demo_bundle("models", data_dir=data_dir, model="als", content="genres",
                             name="sona-demo-als-genres")
        config = bundle_config(bundle, work, threads=max(4, threads))
        log_url = events_url or sqlite_url(work / "events.db")
        settings = io.read_yaml(config)
        settings.update({"events": {"url": log_url}, "search": {"warm_up": False}})
        io.write_yaml(config, settings)
        key = KeyStore(sqlite_url(work / "sona.db")).create(["write"], name="bench")[1]
        titles = [str(i) for i in range(1, 1683)]
        users = [str(u) for u in range(1, 944)]

        def batches(prefix: str, n: int) -> list[list[dict[str, Any]]]:
            return synthetic_batches(n, batch_size, titles=titles, users=users,
                                     prefix=f"{prefix}-{os.getpid()}")

        console.print(f"store: {n_events:,} events in batches of {batch_size}")
        store = bench_store(events_url or sqlite_url(work / "store-only.db"),
                            batches("store", n_events))
        console.print(f"http: {n_events:,} events, {threads} clients")
        with ServerProcess(config) as server:
            http_rate = bench_http(server.url, key, batches("http", n_events), threads=threads)
        durability = None
        if kill:
            console.print("kill -9 during a burst")
            durability = kill_during_burst(config, key, log_url,
                                           batches("kill", max(n_events, 20_000)),
                                           threads=threads)
    load_after = os.getloadavg()

    table = Table(title=f"Event log: batched appends ({batch_size} events per batch; store = "
                        f"EventLog.append, HTTP = POST /api/v1/events/log)")
    for col in ("path", "events", "events/s", "batch p50 ms", "batch p99 ms", "errors"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, rate in (("store", store), (f"HTTP x{threads}", http_rate)):
        table.add_row(name, f"{rate.events:,}", f"{rate.events_per_s:,.0f}",
                      f"{rate.batch_ms_p50:.1f}", f"{rate.batch_ms_p99:.1f}", str(rate.errors))
    console.print(table)
    met = http_rate.events_per_s >= TARGET_EVENTS_PER_S
    console.print(f"target {TARGET_EVENTS_PER_S:,.0f} events/s over HTTP: "
                  f"{'met' if met else 'NOT met'}")
    if durability is not None:
        console.print(f"kill -9 mid-burst: {durability.acknowledged:,} acknowledged, "
                      f"{durability.stored:,} stored, {durability.lost} lost "
                      f"(integrity {durability.integrity})")
    console.print(f"{os.cpu_count()} CPUs, load average (1/5/15 min) before "
                  f"{', '.join(f'{x:.1f}' for x in load_before)}, after "
                  f"{', '.join(f'{x:.1f}' for x in load_after)}")
    io.write_json(out, {
        "batch_size": batch_size, "threads": threads,
        "backend": "postgresql" if events_url and events_url.startswith("postgres")
        else "sqlite", "store": store.to_dict(), "http": http_rate.to_dict(),
        "target_events_per_s": TARGET_EVENTS_PER_S, "target_met": met,
        "kill_9": durability.to_dict() if durability is not None else None,
        "environment": {"cpu_count": os.cpu_count(),
                        "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
                        "load_avg_1_5_15_after": [round(x, 2) for x in load_after]},
    })
    console.print(f"wrote {out}")
