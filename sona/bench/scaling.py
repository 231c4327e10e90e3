"""Scaling benchmark: implicit ALS in one process vs Spark ``local[N]`` at growing sizes.

For each size (default 100K, 1M, 10M interactions) a seeded MovieLens-shaped log
(:mod:`sona.data.synthetic`) is split 80/20 at random (seeded) and written as parquet
once (cached by size and seed). Each (engine, size) step then runs in its own process
(:mod:`sona.bench.scaling_worker`): load, fit ALS with identical hyper-parameters, top-k
for every test user seen in training, nDCG/precision/recall/MAP.

Memory: the worker's own peak comes from ``ru_maxrss`` (exact high-water mark of the
Python process); the JVM Spark starts is a child of the worker, sampled with psutil every
``sample_every_s`` (a sampled peak can miss a spike shorter than the interval). A step past
``timeout_s`` is killed (its process tree, by pid) and recorded as ``timeout`` together
with the phases it finished.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from sona import io
from sona.config import to_dict
from sona.data.synthetic import SyntheticConfig, generate_frame, shape_stats

log = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("implicit", "spark")


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    """What the scaling benchmark runs."""

    sizes: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)  # interactions per dataset
    engines: tuple[str, ...] = ENGINES  # "implicit" (one process) and/or "spark"
    n_factors: int = 32  # ALS rank, both engines
    n_iter: int = 10  # ALS sweeps, both engines
    regularization: float = 0.01  # ALS L2 penalty (Spark scales it per row, ALS-WR)
    alpha: float = 10.0  # confidence slope, both engines
    k: int = 10  # list length for top-k and metrics
    test_share: float = 0.2  # share of rows held out at random for evaluation
    seed: int = 42  # data, split and ALS seed
    master: str = "local[2]"  # Spark master URL
    driver_memory: str = "6g"  # Spark driver heap (local mode: the whole Spark process)
    partitions: int = 4  # spark.sql.shuffle.partitions and ALS blocks
    timeout_s: float = 480.0  # wall limit per (engine, size) step, seconds
    sample_every_s: float = 0.25  # psutil sampling period for child (JVM) memory
    work_dir: str = "datasets/cache/scaling"  # cached parquet splits


def prepare_split(n: int, config: ScalingConfig) -> dict[str, Any]:
    """Generate (or reuse) the parquet train/test split of size ``n``; returns paths + stats."""
    folder = Path(config.work_dir) / f"n{n}-seed{config.seed}"
    train_path, test_path = folder / "train.parquet", folder / "test.parquet"
    stats_path = folder / "stats.json"
    if train_path.exists() and test_path.exists() and stats_path.exists():
        return {"train": str(train_path), "test": str(test_path), **io.read_json(stats_path)}
    start = time.perf_counter()
    frame = generate_frame(SyntheticConfig(n_interactions=n, seed=config.seed))
    generate_s = time.perf_counter() - start
    stats = shape_stats(frame)
    held_out = np.random.default_rng(config.seed + 1).random(len(frame)) < config.test_share
    io.write_parquet(train_path, frame[~held_out])
    io.write_parquet(test_path, frame[held_out])
    info = {"generate_s": round(generate_s, 3), "n_train": int((~held_out).sum()),
            "n_test": int(held_out.sum()),
            "shape": {k: round(v, 4) for k, v in stats.items()}}
    io.write_json(stats_path, info)
    return {"train": str(train_path), "test": str(test_path), **info}


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _rss_mib(proc: Any) -> float:
    import psutil

    try:
        return float(proc.memory_info().rss) / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def _kill_tree(pid: int) -> None:
    """Kill the worker and every process it started (the JVM), by pid."""
    import psutil

    for proc in reversed(_tree(pid)):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


def run_step(engine: str, split: dict[str, Any], config: ScalingConfig,
             out: Path) -> dict[str, Any]:
    """Run one (engine, size) step in a subprocess; timings, memory, metrics, status."""
    cmd = [sys.executable, "-m", "sona.bench.scaling_worker", engine,
           "--train", split["train"], "--test", split["test"], "--out", str(out),
           "--k", str(config.k), "--factors", str(config.n_factors),
           "--iterations", str(config.n_iter), "--regularization", str(config.regularization),
           "--alpha", str(config.alpha), "--seed", str(config.seed), "--master", config.master,
           "--driver-memory", config.driver_memory, "--partitions", str(config.partitions)]
    if out.exists():
        out.unlink()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children_peak = tree_peak = 0.0
    timed_out = False
    while proc.poll() is None:
        procs = _tree(proc.pid)
        rss = [_rss_mib(p) for p in procs]
        if rss:
            tree_peak = max(tree_peak, sum(rss))
            children_peak = max(children_peak, sum(rss[1:]))
        if time.perf_counter() - start > config.timeout_s:
            timed_out = True
            _kill_tree(proc.pid)
            break
        time.sleep(config.sample_every_s)
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    row: dict[str, Any] = io.read_json(out) if out.exists() else {"phases": {}}
    row.update({"engine": engine, "wall_s": round(wall, 3),
                "children_peak_mib": round(children_peak, 1),
                "tree_peak_mib_sampled": round(tree_peak, 1)})
    if timed_out:
        row["status"] = "timeout"
    elif proc.returncode != 0:
        row["status"] = "error"
        row.setdefault("error", (stderr or "").strip().splitlines()[-1:] or ["no output"])
    return row


def machine_info() -> dict[str, Any]:
    """Cores, memory, load, versions: the context every timing needs."""
    import psutil

    def java() -> str:
        try:
            done = subprocess.run(["java", "-version"], capture_output=True, text=True,
                                  timeout=30)
            return (done.stderr or done.stdout).splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "unknown"

    return {"cpu_count": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total
                                                             / 2**30, 1),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "java": java(),
            "implicit": version("implicit"), "pyspark": version("pyspark"),
            "numpy": version("numpy")}


def run_scaling(config: ScalingConfig,
                on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every (size, engine) step of ``config``; returns the JSON-ready report."""
    unknown = [e for e in config.engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; expected {ENGINES}")
    report: dict[str, Any] = {"config": to_dict(config), "machine": machine_info(),
                              "datasets": {}, "rows": []}
    for n in config.sizes:
        split = prepare_split(n, config)
        report["datasets"][str(n)] = {k: v for k, v in split.items()
                                      if k not in ("train", "test")}
        for engine in config.engines:
            out = Path(config.work_dir) / f"step-{engine}-{n}.json"
            row = {"n_interactions": n, **run_step(engine, split, config, out)}
            report["rows"].append(row)
            if on_row is not None:
                on_row(row)
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report
