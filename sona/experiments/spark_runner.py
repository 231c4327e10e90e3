"""Experiments on the Spark engine: an :class:`ExperimentConfig` in, :class:`ModelResult` out.

``engine: spark`` sends every model of a config here instead of the local loop. This module
owns the translation (model specs to :class:`~sona.engines.spark.SparkALSConfig`, Spark
metrics to the runner's per-query arrays); :mod:`sona.engines.spark` does the work and knows
nothing of experiments, so the engine never imports this package back.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sona.config import to_dict
from sona.data.interactions import Interactions
from sona.engines.spark import (
    SparkALSConfig,
    SparkConfig,
    evaluate_top_k,
    evaluation_frames,
    fit_als,
    recommend_top_k,
    spark_context,
    to_spark_frame,
)
from sona.errors import ConfigError
from sona.experiments.results import ModelResult
from sona.experiments.spec import ExperimentConfig, ModelSpec
from sona.models.als import ALSConfig
from sona.models.registry import build_model

log = logging.getLogger(__name__)


def _als_specs(config: ExperimentConfig) -> list[tuple[ModelSpec, ALSConfig]]:
    specs = []
    for i, spec in enumerate(config.models):
        if spec.model != "als":
            raise ConfigError(f"models[{i}].model {spec.model!r}: engine spark trains only "
                              "'als' models; run the others with engine local")
        model = build_model(spec.model, spec.params, where=f"models[{i}].params.")
        if not isinstance(model.config, ALSConfig):
            raise ConfigError(f"models[{i}]: the 'als' registry entry built "
                              f"{type(model.config).__name__}, not ALSConfig")
        specs.append((spec, model.config))
    return specs


def run_spark_models(config: ExperimentConfig, train: Interactions,
                     test: Interactions) -> list[ModelResult]:
    """Train and evaluate each ``als`` model of ``config`` in Spark (``engine: spark``).

    Evaluated users are the test users present in train (sorted), as in the local runner;
    the per-user metric arrays are aligned with them. Metrics Spark cannot compute at
    scale (``personalization``: all pairs of lists) use :mod:`sona.metrics` on the
    collected top-k.

    Raises:
        ConfigError: a model other than ``als``.
    """
    specs = _als_specs(config)
    spark_cfg = SparkConfig(master=config.spark_master, app_name=f"sona-{config.name}")
    results = []
    with spark_context(spark_cfg) as spark:
        user_ids, truth, eval_users = evaluation_frames(spark, train, test)
        n_seen = np.bincount(train.frame["user_idx"].to_numpy(), minlength=train.n_users)
        rows_per_user = float(len(train)) / max(1, int((n_seen > 0).sum()))
        for spec, als_cfg in specs:
            scfg = SparkALSConfig.from_sona(als_cfg, rows_per_user=rows_per_user,
                                            num_blocks=spark_cfg.shuffle_partitions)
            train_df = to_spark_frame(spark, train, train.users, train.items,
                                      binary=scfg.binary).cache()
            start = time.perf_counter()
            model = fit_als(train_df, scfg)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            top = recommend_top_k(model, eval_users, train_df, config.k, n_seen=n_seen,
                                  n_items=train.n_items).cache()
            top.count()
            recommend_s = time.perf_counter() - start
            per_query = evaluate_top_k(top, truth, eval_users, train_df, user_ids, train,
                                       k=config.k, metrics=list(config.metrics))
            top.unpersist()
            train_df.unpersist()
            params = {**to_dict(scfg), "engine": "spark", "master": spark_cfg.master}
            results.append(ModelResult(name=spec.name, model=spec.model, params=params,
                                       per_query=per_query, fit_s=fit_s,
                                       recommend_s=recommend_s, user_ids=user_ids))
            log.info("spark %s: fit %.1f s, top-%d %.1f s", spec.name, fit_s, config.k,
                     recommend_s)
    return results


__all__ = ["run_spark_models"]
