"""Spark engine: implicit ALS, top-k with seen-item exclusion and ranking metrics in Spark.

``engine: spark`` in an experiment config sends every model here instead of the local
loop (:mod:`sona.experiments.spark_runner` turns the config into calls of this module, so
the engine knows nothing of experiments). The same
:class:`~sona.experiments.results.ModelResult` comes back, so MLflow tracking and the
leaderboard are shared with local runs; only the work runs in Spark:

1. ``pyspark.ml.recommendation.ALS`` with ``implicitPrefs=True`` (Hu, Koren & Volinsky,
   ICDM 2008), hyper-parameters taken from the sona ``als`` model spec
   (:meth:`SparkALSConfig.from_sona`), so a local and a Spark run of one spec are comparable.
2. Top-k per evaluated user in Spark: ``recommendForUserSubset`` over-fetches ``k`` plus the
   user's training count (users bucketed by that count, so heavy users do not inflate
   everyone's list), training pairs are removed with an anti-join, and a window keeps
   the best ``k`` (ties: lower item index first).
3. Metrics in Spark (:mod:`sona.engines.spark_metrics`); the per-user values are collected
   for the leaderboard's significance test.

The session binds to 127.0.0.1 for ``local[...]`` masters; for a cluster set the master
URL (``spark_master`` in the experiment config) and put cluster settings (executor memory,
cores) in ``spark-defaults.conf`` or :attr:`SparkConfig.extra`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from sona import io
from sona.data.ids import IdIndex
from sona.data.interactions import Interactions
from sona.engines.spark_metrics import (
    SPARK_METRICS,
    catalog_coverage,
    collect_per_user,
    per_user_metrics,
)
from sona.errors import ConfigError
from sona.metrics import personalization
from sona.models.als import ALSConfig
from sona.types import Recommendations

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame, SparkSession


log = logging.getLogger(__name__)

_TEMP_CHECKPOINTS = "sona-spark-checkpoints-"


@dataclass(frozen=True, slots=True)
class SparkConfig:
    """How to start the Spark session."""

    master: str = "local[2]"  # master URL: local[N] or a cluster (spark://, yarn, k8s://)
    app_name: str = "sona"  # application name shown by the cluster manager
    driver_memory: str = "2g"  # JVM heap of the driver (applies only when it starts the JVM)
    shuffle_partitions: int = 4  # spark.sql.shuffle.partitions: small for local runs
    log_level: str = "ERROR"  # Spark's own log level (quiet by default)
    # RDD checkpoint folder; ALS truncates its lineage there every 10 iterations (without
    # one, ~15 iterations overflow the JVM stack). None: a temp folder for local masters;
    # a cluster needs a shared path (hdfs://, s3a://)
    checkpoint_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # further spark.* settings, verbatim


def session_conf(config: SparkConfig) -> dict[str, str]:
    """The ``spark.*`` settings :func:`spark_session` applies (local masters bind to loopback)."""
    conf = {
        "spark.app.name": config.app_name,
        "spark.driver.memory": config.driver_memory,
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": config.log_level,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if config.master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(config.extra)
    return conf


def spark_session(config: SparkConfig) -> SparkSession:
    """Start (or reuse) a session for ``config``; stop it with ``session.stop()``."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(config.master)
    for key, value in session_conf(config).items():
        builder = builder.config(key, value)
    start = time.perf_counter()
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(config.log_level)
    if session.sparkContext.getCheckpointDir() is None:
        if config.checkpoint_dir is not None:
            session.sparkContext.setCheckpointDir(config.checkpoint_dir)
        elif config.master.startswith("local"):
            session.sparkContext.setCheckpointDir(
                tempfile.mkdtemp(prefix=_TEMP_CHECKPOINTS))
        else:
            log.warning("no checkpoint_dir for master %s: ALS with many iterations may "
                        "overflow the stack", config.master)
    log.info("spark session %s on %s in %.1f s", config.app_name, config.master,
             time.perf_counter() - start)
    return session


@contextlib.contextmanager
def spark_context(config: SparkConfig) -> Iterator[SparkSession]:
    """A session for the block, stopped at its end (also on error) if the block started it.

    An already active session (a notebook's, a test fixture's) is reused and left running;
    its settings win over ``config``.
    """
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    session = spark_session(config)
    checkpoints = session.sparkContext.getCheckpointDir()
    try:
        yield session
    finally:
        if owned:
            session.stop()
            _remove_temp_checkpoints(checkpoints)


def _remove_temp_checkpoints(uri: str | None) -> None:
    """Delete the temp checkpoint folder :func:`spark_session` made (never a configured one)."""
    if not uri:
        return
    folder = Path(uri.removeprefix("file:")).parent
    if folder.name.startswith(_TEMP_CHECKPOINTS) and folder.parent == Path(tempfile.gettempdir()):
        io.remove_tree(folder)


@dataclass(frozen=True, slots=True)
class SparkALSConfig:
    """``pyspark.ml.recommendation.ALS`` settings (implicit preferences)."""

    rank: int = 64  # latent dimension (sona ALS n_factors)
    reg_param: float = 0.1  # L2 penalty; Spark multiplies it by each row's rating count (ALS-WR)
    alpha: float = 40.0  # confidence slope: c = 1 + alpha * r
    max_iter: int = 15  # ALS sweeps (sona ALS n_iter)
    seed: int = 42  # factor initialisation seed
    binary: bool = True  # r = 1 for every interaction (else the weight column)
    num_blocks: int = 4  # user and item blocks (parallelism of each sweep)

    @classmethod
    def from_sona(cls, als: ALSConfig, *, rows_per_user: float = 1.0,
                  num_blocks: int = 4) -> SparkALSConfig:
        """The Spark settings matching a sona :class:`~sona.models.als.ALSConfig`.

        implicit adds ``regularization`` to every row's normal equations; Spark adds
        ``reg_param * n_ratings(row)`` (ALS-WR, Zhou et al. 2008). Passing the training
        log's mean interactions per user as ``rows_per_user`` gives the average user the
        penalty implicit applies (``reg_param = regularization / rows_per_user``); without
        it a tuned ``regularization`` (40 for sona's default on ML-100K) is ~80x too strong
        in Spark and the model collapses to nDCG@10 0.02.
        """
        if rows_per_user <= 0:
            raise ValueError(f"rows_per_user must be > 0, got {rows_per_user}")
        return cls(rank=als.n_factors, reg_param=als.regularization / rows_per_user,
                   alpha=als.alpha, max_iter=als.n_iter, seed=als.seed, binary=als.binary,
                   num_blocks=num_blocks)


def to_spark_frame(spark: SparkSession, data: Interactions, users: IdIndex, items: IdIndex,
                   *, binary: bool = True) -> DataFrame:
    """``(user, item, rating)`` of ``data`` with ints from ``users``/``items`` (via Arrow).

    Users missing from ``users`` are dropped; items missing from ``items`` get indices
    from ``len(items)`` upwards (they can be relevant but never recommended).
    """
    frame = data.frame
    user = users.numbers(frame["user_id"].to_numpy(), missing="negative")
    item = items.numbers(frame["item_id"].to_numpy(), missing="negative")
    unknown = item < 0
    if unknown.any():
        _, codes = np.unique(frame["item_id"].to_numpy()[unknown].astype(str), return_inverse=True)
        item[unknown] = len(items) + codes
    keep = user >= 0
    rating = (np.ones(int(keep.sum()), dtype=np.float32) if binary
              else frame["weight"].to_numpy(np.float32)[keep])
    table = pa.table({"user": user[keep].astype(np.int32), "item": item[keep].astype(np.int32),
                      "rating": rating})
    return spark.createDataFrame(table)


def fit_als(train: DataFrame, config: SparkALSConfig) -> ALSModel:
    """Fit implicit-preference ALS on ``(user, item, rating)``."""
    from pyspark.ml.recommendation import ALS

    als = ALS(rank=config.rank, maxIter=config.max_iter, regParam=config.reg_param,
              alpha=config.alpha, implicitPrefs=True, seed=config.seed, userCol="user",
              itemCol="item", ratingCol="rating", coldStartStrategy="drop",
              numUserBlocks=config.num_blocks, numItemBlocks=config.num_blocks)
    return als.fit(train)


def recommend_top_k(model: ALSModel, users: DataFrame, train: DataFrame, k: int, *,
                    n_seen: NDArray[np.int64], n_items: int, growth: int = 4) -> DataFrame:
    """Top-``k`` ``(user, item, score, rank)`` for ``users`` with training items excluded.

    ``recommendForUserSubset`` over-fetches each user by their training count
    ``n_seen[user]`` (known on the driver), so the anti-join with ``train`` still leaves
    ``k`` items (or every unseen item). Users are bucketed by ``k + n_seen`` rounded up to
    a power of ``growth``: one width per bucket keeps a few heavy users from inflating
    every list, and the buckets run as one Spark job.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    user_idx = np.asarray(users.select("user").toArrow().column("user").to_numpy(), np.int64)
    need = k + n_seen[user_idx]
    exponent = np.ceil(np.log(need) / np.log(growth) - 1e-9).astype(np.int64)
    spark = users.sparkSession
    recs = None
    for e in np.unique(exponent):
        members = user_idx[exponent == e].astype(np.int32)
        subset = spark.createDataFrame(pa.table({"user": members}))
        part = model.recommendForUserSubset(subset, int(min(n_items, growth ** int(e))))
        recs = part if recs is None else recs.unionByName(part)
    if recs is None:
        return spark.createDataFrame([], "user int, item int, score float, rank int")
    flat = (recs.select("user", F.explode("recommendations").alias("r"))
            .select("user", F.col("r.item").alias("item"), F.col("r.rating").alias("score"))
            .join(train.select("user", "item"), ["user", "item"], "left_anti"))
    order = Window.partitionBy("user").orderBy(F.col("score").desc(), F.col("item").asc())
    return flat.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)


def evaluation_frames(spark: SparkSession, train: Interactions,
                       test: Interactions) -> tuple[np.ndarray, DataFrame, DataFrame]:
    """Sorted evaluated user ids, the ``(user, item)`` ground truth and the user frame.

    Evaluated users are the test users present in train, as in the local runner.
    """
    test_ids = np.asarray(test.users.ids_array)
    in_train = train.users.numbers(test_ids, missing="negative") >= 0
    user_ids = test_ids[in_train]
    user_ids = (np.sort(user_ids) if user_ids.dtype != object
                else np.asarray(sorted(user_ids), dtype=object))
    truth = to_spark_frame(spark, test, train.users, train.items).select("user", "item")
    truth = truth.distinct().cache()
    users = spark.createDataFrame(pa.table(
        {"user": train.users.numbers(user_ids).astype(np.int32)}))
    return user_ids, truth, users


def evaluate_top_k(top: DataFrame, truth: DataFrame, users: DataFrame, train_df: DataFrame,
                   user_ids: np.ndarray, train: Interactions, *, k: int,
                   metrics: list[str]) -> dict[str, np.ndarray]:
    """``sona.metrics.evaluate``-shaped results for a Spark top-k frame.

    Per-user metrics and coverage are computed in Spark; ``personalization`` on the
    collected lists (see :mod:`sona.engines.spark_metrics`).
    """
    in_spark = [m for m in metrics if m in SPARK_METRICS]
    collected: dict[str, np.ndarray] = {}
    if in_spark:
        frame = per_user_metrics(top, truth, users, k=k,
                                 train=train_df if "novelty" in in_spark else None,
                                 n_users=train.n_users)
        collected = collect_per_user(frame, user_ids, train.users, in_spark)
    out: dict[str, np.ndarray] = {}
    for name in metrics:
        if name in collected:
            out[name] = collected[name]
        elif name == "coverage":
            out[name] = np.asarray(catalog_coverage(top, train.n_items), dtype=np.float64)
        elif name == "personalization":
            ids, scores = collect_top_k(top, user_ids, train.users, train.items, k)
            out[name] = np.asarray(personalization(Recommendations(ids, scores)),
                                   dtype=np.float64)
        else:
            raise ConfigError(f"metric {name!r} is not available with engine spark")
    return out


def collect_top_k(top: DataFrame, user_ids: np.ndarray, users: IdIndex, items: IdIndex,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather Spark top-k rows into ``(ids, scores)`` arrays ``(len(user_ids), k)``.

    Rows are aligned with ``user_ids`` (external ids); missing slots get the pad id and
    NaN, as in :class:`~sona.types.Recommendations`.
    """
    table = top.select("user", "item", "score", "rank").toArrow()
    u = table.column("user").to_numpy().astype(np.int64)
    it = table.column("item").to_numpy().astype(np.int64)
    score = table.column("score").to_numpy().astype(np.float64)
    rank = table.column("rank").to_numpy().astype(np.int64)
    row_of = np.full(len(users), -1, dtype=np.int64)
    row_of[users.numbers(user_ids)] = np.arange(len(user_ids))
    rows = row_of[u]
    keep = rows >= 0
    idx = np.full((len(user_ids), k), -1, dtype=np.int64)
    scores = np.full((len(user_ids), k), np.nan)
    idx[rows[keep], rank[keep] - 1] = it[keep]
    scores[rows[keep], rank[keep] - 1] = score[keep]
    return items.ids(idx), scores


__all__ = [
    "SPARK_METRICS",
    "SparkALSConfig",
    "SparkConfig",
    "collect_top_k",
    "evaluate_top_k",
    "fit_als",
    "evaluation_frames",
    "recommend_top_k",
    "session_conf",
    "spark_context",
    "spark_session",
    "to_spark_frame",
]
