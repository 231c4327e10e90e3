"""Ranking metrics computed in Spark, with the definitions of :mod:`sona.metrics`.

Input frames use integer ids: ``top`` is ``(user, item, score, rank)`` with ranks 1..k,
``truth`` is the distinct ``(user, item)`` ground truth (every test item of the user,
binary relevance, the Microsoft Recommenders protocol) and ``users`` lists the evaluated
users. Per user (formulas as in :mod:`sona.metrics.ranking`):

- precision = hits / k; recall = hits / |R|; hit_rate = [hits > 0]
- ndcg = sum_hits 1/log2(rank+1) / sum_{i<=min(|R|,k)} 1/log2(i+1)
- map = sum_hits P@rank / |R|; map_min_k = the same over min(|R|, k); mrr = 1/first hit rank
- novelty = mean over the list of -log2(pop(i) / n_users), pop = distinct training users
- coverage (scalar) = distinct recommended items / training items

``personalization`` compares every pair of lists (quadratic in users), so it is computed
with :func:`sona.metrics.personalization` on the collected top-k instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from sona.data.ids import IdIndex

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

#: per-user metrics computed in Spark
SPARK_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "map_min_k", "mrr",
                                  "hit_rate", "novelty")


def per_user_metrics(top: DataFrame, truth: DataFrame, users: DataFrame, *, k: int,
                     train: DataFrame | None = None, n_users: int | None = None) -> DataFrame:
    """One row per evaluated user: ``user`` and a column per :data:`SPARK_METRICS` entry.

    ``novelty`` needs ``train`` (``user, item``) and ``n_users`` (the training user count);
    without them that column is left out. Users without a relevant item get NULL (NaN
    after collection), users without recommendations get 0 for the accuracy metrics.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    judged = (top.select("user", "item", "rank")
              .join(truth.select("user", "item").withColumn("rel", F.lit(1)),
                    ["user", "item"], "left")
              .withColumn("hit", F.coalesce(F.col("rel"), F.lit(0)).cast("double")))
    running = Window.partitionBy("user").orderBy("rank").rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    judged = judged.withColumn("cum_hits", F.sum("hit").over(running))
    rank = F.col("rank").cast("double")
    per_list = judged.groupBy("user").agg(
        F.sum("hit").alias("hits"),
        F.sum(F.col("hit") / F.log2(rank + 1.0)).alias("dcg"),
        F.sum(F.col("hit") * F.col("cum_hits") / rank).alias("ap_sum"),
        F.min(F.when(F.col("hit") > 0, rank)).alias("first_hit"),
    )
    n_rel = truth.groupBy("user").agg(F.count("*").cast("double").alias("n_rel"))
    frame = (users.select("user").distinct().join(n_rel, "user", "left")
             .join(per_list, "user", "left")
             .fillna(0.0, ["hits", "dcg", "ap_sum"]))
    cut = F.least(F.col("n_rel"), F.lit(float(k)))
    idcg = F.expr(f"aggregate(sequence(1, cast(least(n_rel, {k}) as int)), 0D, "
                  "(acc, i) -> acc + 1D / log2(i + 1D))")
    defined = F.col("n_rel") > 0  # NULL n_rel (no relevant item) keeps every metric NULL
    out = frame.select(
        "user",
        F.when(defined, F.col("hits") / float(k)).alias("precision"),
        F.when(defined, F.col("hits") / F.col("n_rel")).alias("recall"),
        F.when(defined, F.col("dcg") / idcg).alias("ndcg"),
        F.when(defined, F.col("ap_sum") / F.col("n_rel")).alias("map"),
        F.when(defined, F.col("ap_sum") / cut).alias("map_min_k"),
        F.when(defined, F.coalesce(1.0 / F.col("first_hit"), F.lit(0.0))).alias("mrr"),
        F.when(defined, (F.col("hits") > 0).cast("double")).alias("hit_rate"),
    )
    if train is not None and n_users:
        pop = train.groupBy("item").agg(F.countDistinct("user").alias("pop"))
        info = (top.join(pop, "item", "left")
                .groupBy("user")
                .agg(F.avg(-F.log2(F.col("pop") / float(n_users))).alias("novelty")))
        out = out.join(info, "user", "left")
    return out


def catalog_coverage(top: DataFrame, n_items: int) -> float:
    """Distinct recommended items / ``n_items`` (computed in Spark)."""
    return float(top.select("item").distinct().count()) / float(n_items)


def collect_per_user(frame: DataFrame, user_ids: NDArray[np.generic], users: IdIndex,
                     names: list[str]) -> dict[str, NDArray[np.float64]]:
    """Per-user metric columns as arrays aligned with ``user_ids`` (NaN where absent)."""
    table = frame.select("user", *names).toArrow()
    u = table.column("user").to_numpy().astype(np.int64)
    row_of = np.full(len(users), -1, dtype=np.int64)
    row_of[users.numbers(user_ids)] = np.arange(len(user_ids))
    rows = row_of[u]
    keep = rows >= 0
    out: dict[str, NDArray[np.float64]] = {}
    for name in names:
        values = np.full(len(user_ids), np.nan)
        column = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values[rows[keep]] = column[keep]
        out[name] = values
    return out


def ranking_summary(frame: DataFrame, names: list[str]) -> dict[str, float]:
    """Mean of each per-user column over users where it is defined (Spark ``avg`` skips NULL)."""
    from pyspark.sql import functions as F

    row = frame.agg(*[F.avg(name).alias(name) for name in names]).collect()[0]
    return {name: float("nan") if row[name] is None else float(row[name]) for name in names}
