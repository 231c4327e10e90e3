"""New search queries through the service's query encoder, shared passes vs one pass each.

The search service wraps its MiniLM encoder (``sona.serving.search_http._LoadOnce``) so that
concurrent new queries share forward passes (``sona.serving.batching.ThreadBatcher``). This
drives the real wrapper from ``--threads`` threads, each encoding new query strings, with
batches of up to 16 and with batches of 1 (every query alone, the behaviour before), in
alternating rounds on the same process, and prints queries per second and CPU per query.

    .venv/bin/python benchmarks/encoder_batching.py --rounds 6 --seconds 2

Writes ``benchmarks/results/encoder-batching.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from sona.embeddings import TextEncoder
from sona.serving.search_http import _LoadOnce

WORDS = ["space", "funny", "scary", "sad", "romantic", "heist", "robot", "war", "western",
         "musical", "spy", "detective", "pirate", "zombie", "family", "sports"]


def run_round(wrapped: _LoadOnce, threads: int, seconds: float, salt: str) -> dict:
    """``threads`` callers encoding new queries for ``seconds``: queries/s and CPU ms each."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def caller(t: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            wrapped.encode([f"{WORDS[n % len(WORDS)]} movie {salt} {t} {n}"], use_cache=False)
            n += 1
        counts[t] = n

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    total = sum(counts)
    return {"queries": total, "qps": total / wall, "cpu_ms_per_query": 1000 * cpu / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="concurrent callers")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per mode")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (the service's torch_threads: 1)")
    parser.add_argument("--out", default="benchmarks/results/encoder-batching.json")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    encoder = TextEncoder()
    modes = {"shared passes (max 16)": _LoadOnce(encoder, max_batch=16),
             "one pass each (before)": _LoadOnce(encoder, max_batch=1)}
    for wrapped in modes.values():
        wrapped.encode(["load the encoder"], use_cache=False)
    rounds: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for name, wrapped in modes.items():
            rounds[name].append(run_round(wrapped, args.threads, args.seconds, f"r{r}"))
    table = Table(title=f"new queries through the search encoder: {args.threads} threads, "
                        f"{args.rounds} alternating rounds of {args.seconds:g} s, medians; "
                        f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for col in ("mode", "queries/s", "CPU ms/query", "mean batch", "qps per round"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    summary = {}
    for name, wrapped in modes.items():
        qps = statistics.median(x["qps"] for x in rounds[name])
        cpu = statistics.median(x["cpu_ms_per_query"] for x in rounds[name])
        batch = wrapped.batcher.items / max(wrapped.batcher.batches, 1)
        summary[name] = {"qps_median": qps, "cpu_ms_per_query_median": cpu,
                         "mean_batch": batch, "rounds": rounds[name]}
        table.add_row(name, f"{qps:.0f}", f"{cpu:.2f}", f"{batch:.2f}",
                      " ".join(f"{x['qps']:.0f}" for x in rounds[name]))
    Console().print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds,
                               "seconds": args.seconds, "torch_threads": args.torch_threads,
                               "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
                               "modes": summary}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
