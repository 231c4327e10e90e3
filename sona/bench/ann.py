"""Approximate item index benchmark: faiss IVF and HNSW against exact search at 1M items.

Two retrieval tasks over the same seeded item vectors (clustered, with log-normal norms
standing in for popularity, like ALS item factors):

- ``similar``: similar items, cosine similarity, queries are item vectors with the item
  itself excluded;
- ``candidates``: candidate retrieval for a user, raw inner product (the ALS score),
  queries are user-like vectors (means of a few items plus noise).

For each task the exact :class:`~sona.search.ExactIndex` answers every query (the ground
truth and the brute-force latency); each approximate kind is built once and swept over
its recall knob (``nprobe`` for IVF, ``ef_search`` for HNSW): recall@k against exact,
batch throughput and single-query latency p50/p99.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.config import to_dict
from sona.search import ExactIndex, ExactIndexConfig, FaissIndex, FaissIndexConfig

log = logging.getLogger(__name__)

TASKS: dict[str, str] = {"similar": "cosine", "candidates": "ip"}


@dataclass(frozen=True, slots=True)
class AnnConfig:
    """What ``sona bench ann`` measures."""

    n_items: int = 1_000_000  # indexed item vectors
    dim: int = 64  # vector dimension (an ALS rank)
    n_clusters: int = 2000  # taste clusters the items are drawn around
    n_queries: int = 1000  # queries for recall and batch throughput
    latency_queries: int = 200  # single-vector queries timed one by one
    k: int = 10  # neighbours per query (recall@k)
    tasks: tuple[str, ...] = ("similar", "candidates")  # keys of TASKS
    kinds: tuple[str, ...] = ("ivf", "hnsw")  # faiss kinds to compare with exact
    nlist: int = 4096  # IVF cells (~ 4 sqrt(n))
    nprobes: tuple[int, ...] = (8, 32, 128)  # IVF recall knob sweep
    hnsw_m: int = 16  # HNSW neighbours per node
    ef_construction: int = 64  # HNSW build beam
    ef_searches: tuple[int, ...] = (32, 64, 128)  # HNSW recall knob sweep
    seed: int = 42  # vectors and queries


def item_vectors(config: AnnConfig) -> NDArray[np.float32]:
    """Seeded clustered vectors ``(n_items, dim)``, built in chunks (float32 throughout)."""
    rng = np.random.default_rng(config.seed)
    centres = rng.standard_normal((config.n_clusters, config.dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, config.n_clusters + 1) ** 0.8  # uneven cluster sizes
    out = np.empty((config.n_items, config.dim), dtype=np.float32)
    step = 100_000
    for start in range(0, config.n_items, step):
        m = min(step, config.n_items - start)
        cluster = rng.choice(config.n_clusters, size=m, p=weights / weights.sum())
        noise = rng.standard_normal((m, config.dim), dtype=np.float32) * np.float32(0.6)
        norms = rng.lognormal(0.0, 0.4, size=(m, 1)).astype(np.float32)
        block = centres[cluster] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + m] = block * norms
    return out


def queries_for(task: str, vectors: NDArray[np.float32], config: AnnConfig,
                n: int, seed_offset: int) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
    """``(queries, exclude)``: item vectors minus themselves, or user-like mixtures."""
    rng = np.random.default_rng(config.seed + seed_offset)
    if task == "similar":
        items = rng.choice(len(vectors), size=n, replace=False).astype(np.int64)
        return vectors[items], items[:, None]
    picks = rng.choice(len(vectors), size=(n, 5))
    users = vectors[picks].mean(axis=1)
    users += rng.standard_normal(users.shape, dtype=np.float32) * np.float32(0.05)
    return users.astype(np.float32), None


def recall_at_k(approx: NDArray[Any], exact: NDArray[Any]) -> float:
    """Mean share of each exact top-k list found by the approximate list."""
    hits = [len(set(a.tolist()) & set(e.tolist())) / len(e)
            for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(hits))


def _latency_ms(index: Any, queries: NDArray[np.float32], exclude: NDArray[np.int64] | None,
                k: int) -> dict[str, float]:
    times = []
    for i in range(len(queries)):
        ex = exclude[i:i + 1] if exclude is not None else None
        start = time.perf_counter()
        index.search(queries[i:i + 1], k, exclude=ex)
        times.append((time.perf_counter() - start) * 1000.0)
    arr = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3),
            "p99_ms": round(float(np.percentile(arr, 99)), 3)}


def run_ann(config: AnnConfig,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Build and sweep every (task, kind); returns the JSON-ready report."""
    unknown = [t for t in config.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected {list(TASKS)}")
    start = time.perf_counter()
    vectors = item_vectors(config)
    gen_s = time.perf_counter() - start
    ids = np.arange(len(vectors), dtype=np.int64)
    report: dict[str, Any] = {"config": to_dict(config), "generate_s": round(gen_s, 2),
                              "rows": []}

    def emit(row: dict[str, Any]) -> None:
        report["rows"].append(row)
        if on_row is not None:
            on_row(row)

    for t, task in enumerate(config.tasks):
        metric = TASKS[task]
        queries, exclude = queries_for(task, vectors, config, config.n_queries, 10 + t)
        lat_q, lat_ex = queries_for(task, vectors, config, config.latency_queries, 20 + t)
        exact = ExactIndex(ExactIndexConfig(metric=metric))  # type: ignore[arg-type]
        start = time.perf_counter()
        exact.add(ids, vectors)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        truth = exact.search(queries, config.k, exclude=exclude)
        batch_s = time.perf_counter() - start
        emit({"task": task, "metric": metric, "kind": "exact", "param": None,
              "build_s": round(build_s, 2), "recall_at_k": 1.0,
              "batch_ms_per_query": round(batch_s * 1000.0 / len(queries), 3),
              **_latency_ms(exact, lat_q[:20], None if lat_ex is None else lat_ex[:20],
                            config.k)})
        del exact
        for kind in config.kinds:
            index = FaissIndex(FaissIndexConfig(
                kind=kind, metric=metric, nlist=config.nlist,  # type: ignore[arg-type]
                hnsw_m=config.hnsw_m, ef_construction=config.ef_construction, seed=config.seed))
            start = time.perf_counter()
            index.add(ids, vectors)
            build_s = time.perf_counter() - start
            knob = "nprobe" if kind == "ivf" else "ef_search"
            for value in config.nprobes if kind == "ivf" else config.ef_searches:
                index.set_search_params(**{knob: value})
                start = time.perf_counter()
                found = index.search(queries, config.k, exclude=exclude)
                batch_s = time.perf_counter() - start
                emit({"task": task, "metric": metric, "kind": kind, "param": {knob: value},
                      "build_s": round(build_s, 2),
                      "recall_at_k": round(recall_at_k(found.ids, truth.ids), 4),
                      "batch_ms_per_query": round(batch_s * 1000.0 / len(queries), 3),
                      **_latency_ms(index, lat_q, lat_ex, config.k)})
            del index
    return report
