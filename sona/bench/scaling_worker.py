"""One scaling-benchmark step in its own process: ``python -m sona.bench.scaling_worker``.

Each (engine, size) step runs in a fresh process so its peak memory (``ru_maxrss``) is its
own and a step past its time limit can be killed without losing the others. The worker
writes its progress (phase timings so far) to a JSON file after every phase; the parent
(:mod:`sona.bench.scaling`) reads it, also after a timeout.

Both engines run the same pipeline on the same parquet split: load, fit implicit ALS with
the same hyper-parameters, top-k for every test user seen in training (training items
excluded), then nDCG/precision/recall/MAP at k.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sona import io

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("ndcg", "precision", "recall", "map")
#: users scored per block by the in-process engine (bounds the dense score block)
USER_BLOCK = 2048


def _peak_mib() -> float:
    """This process's peak resident memory (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Progress:
    """Phase timer that rewrites the result file after each phase."""

    def __init__(self, out: str, info: dict[str, Any]) -> None:
        self.out = out
        self.state: dict[str, Any] = {**info, "status": "running", "phases": {}}
        self._t0 = time.perf_counter()
        self.save()

    def phase(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``, record its wall seconds under ``name``, save, return its value."""
        start = time.perf_counter()
        value = fn()
        self.state["phases"][name] = round(time.perf_counter() - start, 3)
        self.save()
        return value

    def save(self, **extra: Any) -> None:
        self.state.update(extra)
        self.state["python_peak_mib"] = round(_peak_mib(), 1)
        self.state["worker_wall_s"] = round(time.perf_counter() - self._t0, 3)
        io.write_json(self.out, self.state)


def run_implicit(args: argparse.Namespace, progress: Progress) -> dict[str, float]:
    """sona's ALS (implicit, one process, all cores) + numpy top-k + sona.metrics."""
    from sona.data.interactions import Interactions
    from sona.metrics import evaluate, summarize
    from sona.models.als import ALS, ALSConfig
    from sona.types import Recommendations

    def load() -> tuple[Interactions, Interactions]:
        train = Interactions.from_frame(io.read_table(args.train))
        test = Interactions.from_frame(io.read_table(args.test))
        return train, test

    train, test = progress.phase("load_s", load)
    config = ALSConfig(n_factors=args.factors, n_iter=args.iterations,
                       regularization=args.regularization, alpha=args.alpha, seed=args.seed)
    model = progress.phase("fit_s", lambda: ALS(config).fit(train))
    test_users = np.asarray(test.users.ids_array)
    users = test_users[train.users.numbers(test_users, missing="negative") >= 0]

    def top_k() -> Recommendations:
        blocks = [model.recommend(users[s:s + USER_BLOCK], k=args.k)
                  for s in range(0, len(users), USER_BLOCK)]
        return Recommendations(np.concatenate([b.ids for b in blocks]),
                               np.concatenate([b.scores for b in blocks]))

    recs = progress.phase("topk_s", top_k)
    per_query = progress.phase("metrics_s", lambda: evaluate(recs, users, test, k=args.k,
                                                             metrics=list(METRICS)))
    progress.state["n_eval_users"] = int(len(users))
    return summarize(per_query)


def run_spark(args: argparse.Namespace, progress: Progress) -> dict[str, float]:
    """pyspark.ml ALS on ``args.master`` + Spark top-k (anti-join) + Spark metrics."""
    from pyspark.sql import functions as F

    from sona.engines.spark import (
        SparkALSConfig,
        SparkConfig,
        fit_als,
        recommend_top_k,
        spark_context,
    )
    from sona.engines.spark_metrics import per_user_metrics, ranking_summary
    from sona.models.als import ALSConfig

    spark_cfg = SparkConfig(master=args.master, app_name="sona-bench-scaling",
                            driver_memory=args.driver_memory,
                            shuffle_partitions=args.partitions)
    with contextlib.ExitStack() as stack:
        spark = progress.phase("session_s",
                               lambda: stack.enter_context(spark_context(spark_cfg)))

        def load() -> tuple[Any, Any, Any]:
            def pairs(path: str) -> Any:
                return spark.read.parquet(path).select(
                    F.col("user_id").cast("int").alias("user"),
                    F.col("item_id").cast("int").alias("item"))

            train = pairs(args.train).withColumn("rating", F.lit(1.0).cast("float")).cache()
            train.count()
            users = (pairs(args.test).select("user").distinct()
                     .join(train.select("user").distinct(), "user").cache())
            truth = pairs(args.test).join(users, "user").distinct().cache()
            truth.count()
            return train, users, truth

        train, users, truth = progress.phase("load_s", load)
        rows_per_user = train.count() / train.select("user").distinct().count()
        als = SparkALSConfig.from_sona(
            ALSConfig(n_factors=args.factors, n_iter=args.iterations,
                      regularization=args.regularization, alpha=args.alpha, seed=args.seed),
            rows_per_user=rows_per_user, num_blocks=args.partitions)
        model = progress.phase("fit_s", lambda: fit_als(train, als))

        def top_k() -> Any:
            seen = train.groupBy("user").agg(F.count("*").alias("n")).toArrow()
            u = seen.column("user").to_numpy().astype(np.int64)
            n_seen = np.zeros(int(u.max()) + 1, dtype=np.int64)
            n_seen[u] = seen.column("n").to_numpy()
            n_items = model.itemFactors.count()
            top = recommend_top_k(model, users, train, args.k, n_seen=n_seen,
                                  n_items=n_items).cache()
            top.count()
            return top

        top = progress.phase("topk_s", top_k)
        summary = progress.phase("metrics_s", lambda: ranking_summary(
            per_user_metrics(top, truth, users, k=args.k), list(METRICS)))
        progress.state["n_eval_users"] = int(users.count())
        return summary


def main(argv: list[str] | None = None) -> int:
    """Parse the step's arguments, run it, write the final JSON; exit status 0 or 1."""
    parser = argparse.ArgumentParser(prog="sona.bench.scaling_worker")
    parser.add_argument("engine", choices=["implicit", "spark"])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    progress = Progress(args.out, {"engine": args.engine})
    runner = run_implicit if args.engine == "implicit" else run_spark
    try:
        metrics = runner(args, progress)
    except Exception as exc:  # recorded for the table; the parent marks the step failed
        progress.save(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    progress.save(status="ok", metrics={k: round(float(v), 5) for k, v in metrics.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
