"""Does tier-2 LoRA personalisation help? Base TwoTower vs base + adapters (SPEC §2.2).

Protocol (per-user chronological, ``leave_last_out`` applied twice):

1. each user's ``test_events`` latest interactions are held out (test);
2. the ``adapt_events`` interactions before those are the adaptation window;
3. everything earlier trains the shared base model, which never sees 1 or 2.

Evaluated users have ``>= min_events`` events in the window and test events. For them,
segment adapters are trained on the members' window events, then one user adapter per
user on their own window events (on top of the segment adapter). Every row ranks items the
user has not seen in base training nor in the window and is scored against the test events
(nDCG@k, binary); rows are compared with base alone by a paired bootstrap over users. A
"refit" row fits the base model again with the window events included: the full-retrain
reference that adapters approximate in milliseconds per user.

The storage part saves every user adapter in both backends (directory and SQL) in float32
and a sample in float16, and times a cold ``AdapterStore.latest`` per user.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sona.data.interactions import Interactions
from sona.data.splits import leave_last_out
from sona.experiments.stats import compare
from sona.metrics import evaluate
from sona.models.two_tower import TwoTower, TwoTowerConfig

log = logging.getLogger(__name__)

#: MovieLens-1M age bands (lower bounds), used for ML-100K's exact ages
AGE_BANDS = (0, 18, 25, 35, 45, 50, 56)


@dataclass(frozen=True, slots=True)
class LoraEvalConfig:
    """What :func:`run_lora_eval` measures."""

    # latest events per user held out for testing
    test_events: int = 10
    # events before those: the adaptation window (adapters train on them)
    adapt_events: int = 10
    # list length and nDCG cut-off
    k: int = 10
    # user segments for segment adapters ("none": user adapters only)
    segment_by: Literal["none", "age", "gender", "occupation", "age_gender"] = "age_gender"
    # also fit the base model on base + window events (the full-retrain reference)
    refit: bool = True
    # users evaluated at most (0: all eligible), the first ones by id
    max_users: int = 0
    # float16 adapters saved per backend for the size and precision figures
    fp16_sample: int = 50
    # bootstrap resamples of the paired CI
    n_boot: int = 10_000
    # tier-1 model
    base: TwoTowerConfig = field(default_factory=TwoTowerConfig)


@dataclass(frozen=True, slots=True)
class LoraEvalResult:
    """Figures of one evaluation; :meth:`to_dict` is what the JSON holds."""

    protocol: dict[str, Any]
    ndcg: dict[str, float]  # row -> mean nDCG@k
    comparisons: list[dict[str, Any]]  # each row vs base: paired bootstrap + Wilcoxon
    timings: dict[str, float]  # train/load/fit figures in ms or s
    storage: dict[str, Any]  # bytes per backend and precision, round-trip errors
    adapter_loss: dict[str, float]  # mean first/last training loss of user adapters
    per_user: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (per-user arrays left out)."""
        out = dataclasses.asdict(self)
        out.pop("per_user")
        return out


def segment_labels(users: pd.DataFrame, by: str) -> dict[Any, str]:
    """User id -> segment name from MovieLens demographics (``age``/``gender``/``occupation``).

    Raises:
        ValueError: an unknown ``by`` or a missing column.
    """
    if by == "none":
        return {}
    parts = {"age": ["age"], "gender": ["gender"], "occupation": ["occupation"],
             "age_gender": ["age", "gender"]}.get(by)
    if parts is None:
        raise ValueError(f"segment_by must be none/age/gender/occupation/age_gender, got {by!r}")
    missing = [c for c in ["user_id", *parts] if c not in users.columns]
    if missing:
        raise ValueError(f"user table lacks column(s) {missing} for segment_by={by!r}")
    labels = pd.Series("", index=users.index, dtype=object)
    for col in parts:
        if col == "age":
            ages = pd.to_numeric(users["age"], errors="coerce")
            band = np.searchsorted(AGE_BANDS, ages.fillna(-1).to_numpy(), side="right") - 1
            value = pd.Series([f"{AGE_BANDS[b]}+" if b >= 0 and not np.isnan(a) else "unknown"
                               for b, a in zip(band, ages.to_numpy(float), strict=True)],
                              index=users.index)
        else:
            value = users[col].astype(str)
        labels = labels + ("|" if col != parts[0] else "") + f"{col}=" + value
    return dict(zip(users["user_id"].tolist(), labels.tolist(), strict=True))


def run_lora_eval(data: Interactions, users: pd.DataFrame | None, config: LoraEvalConfig,
                  workdir: str | Path, *, adapter: Any = None,
                  base: TwoTower | None = None) -> LoraEvalResult:
    """Run the protocol in the module docstring.

    Args:
        data: the full interaction log (timestamps required).
        users: user table for segments (``user_id`` + demographics), or None.
        config: protocol settings.
        workdir: folder receiving the adapter stores (``adapters/``, ``adapters.db``).
        adapter: :class:`~sona.lora.two_tier.AdapterTrainingConfig` (default settings
            when None).
        base: a TwoTower already fitted on this protocol's base split (skips the fit).

    Raises:
        ValueError: the window is smaller than the adapter's ``min_events``, or no user
            qualifies.
    """
    from sona.lora import DirectoryAdapterStore
    from sona.lora.two_tier import AdapterTrainingConfig, PersonalizedScorer

    adapter_cfg = adapter if adapter is not None else AdapterTrainingConfig()
    if config.adapt_events < adapter_cfg.min_events:
        raise ValueError(f"adapt_events={config.adapt_events} is below the adapter's "
                         f"min_events={adapter_cfg.min_events}")
    rest, test = leave_last_out(data, config.test_events)[:2]
    base_train, window = leave_last_out(rest, config.adapt_events)[:2]
    timings: dict[str, float] = {}
    if base is None:
        start = time.perf_counter()
        base = TwoTower(config.base).fit(base_train)
        timings["base_fit_s"] = time.perf_counter() - start
    # adapters can only use items the base model knows
    window_items = {u: [i for i in items if i in base.items_]
                    for u, items in _items_by_user(window).items()}
    test_users = set(test.users.ids_array.tolist())
    eligible = sorted(u for u, items in window_items.items()
                      if len(items) >= adapter_cfg.min_events and u in test_users)
    if config.max_users:
        eligible = eligible[:config.max_users]
    if not eligible:
        raise ValueError("no user has enough window and test events")
    workdir = Path(workdir)
    segments = segment_labels(users, config.segment_by) if users is not None else {}
    scorer = PersonalizedScorer(base, DirectoryAdapterStore(workdir / "adapters"), adapter_cfg,
                                segments=segments, base_model_version="lora-eval")

    seg_ms = []
    members: dict[str, dict[Any, list[Any]]] = {}
    for u in eligible:
        if str(u) in scorer.segments:
            members.setdefault(scorer.segments[str(u)], {})[u] = window_items[u]
    for name, events in sorted(members.items()):
        seg_ms.append(scorer.train_segment_adapter(name, events).metrics["train_ms"])
    records, train_ms = {}, []
    for u in eligible:
        record = scorer.train_user_adapter(u, window_items[u])
        records[u] = record
        train_ms.append(record.metrics["train_ms"])
    timings.update(_percentiles("user_train_ms", train_ms))
    if seg_ms:
        timings.update(_percentiles("segment_train_ms", seg_ms))

    seen_window = {u: window_items[u] for u in eligible}
    rows: dict[str, np.ndarray] = {}

    def ndcg(recs: Any) -> np.ndarray:
        return evaluate(recs, np.asarray(eligible), test, k=config.k, metrics=["ndcg"])["ndcg"]

    rows["base"] = ndcg(scorer.recommend_personalized(
        eligible, config.k, exclude=seen_window, use_segments=False, use_user=False))
    if members:
        rows["base+segment"] = ndcg(scorer.recommend_personalized(
            eligible, config.k, exclude=seen_window, use_user=False))
    user_row = "base+segment+user" if members else "base+user"
    start = time.perf_counter()
    rows[user_row] = ndcg(scorer.recommend_personalized(eligible, config.k,
                                                        exclude=seen_window))
    timings["personalized_recommend_ms_per_user"] = \
        (time.perf_counter() - start) * 1000 / len(eligible)
    if config.refit:
        start = time.perf_counter()
        refit = TwoTower(config.base).fit(rest)
        timings["refit_s"] = time.perf_counter() - start
        rows["refit (base+window)"] = ndcg(refit.recommend(eligible, k=config.k))
    comparisons = [compare(values, rows["base"], name_a=name, name_b="base", metric="ndcg",
                           n_boot=config.n_boot).to_dict()
                   for name, values in rows.items() if name != "base"]
    storage, load_timings = benchmark_storage(records, workdir, config.fp16_sample)
    timings.update(load_timings)
    protocol = {
        "split": "per-user chronological: leave_last_out(test_events) then "
                 "leave_last_out(adapt_events) on the rest",
        "test_events": config.test_events, "adapt_events": config.adapt_events,
        "k": config.k, "segment_by": config.segment_by, "users_evaluated": len(eligible),
        "segments": len(members), "base_train_interactions": len(base_train),
        "window_interactions": len(window), "test_interactions": len(test),
        "base": dataclasses.asdict(config.base), "adapter": dataclasses.asdict(adapter_cfg),
    }
    losses = [r.metrics for r in records.values()]
    return LoraEvalResult(
        protocol=protocol, ndcg={k: float(np.nanmean(v)) for k, v in rows.items()},
        comparisons=comparisons, timings=timings, storage=storage,
        adapter_loss={"first": float(np.mean([m["loss_first"] for m in losses])),
                      "last": float(np.mean([m["loss"] for m in losses]))},
        per_user={k: v.tolist() for k, v in rows.items()})


def benchmark_storage(records: Mapping[Any, Any], workdir: Path,
                      fp16_sample: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Save ``records`` (user -> AdapterRecord) in both backends; sizes and cold-load times.

    Returns:
        ``(storage, timings)``: bytes per backend and precision with fp16 round-trip
        errors, and ``load_ms_p50/p95`` per backend (``AdapterStore.latest``, no cache).
    """
    from sona.db import sqlite_url
    from sona.lora import AdapterStore, DirectoryAdapterStore

    backends = {"directory": DirectoryAdapterStore(workdir / "store-directory"),
                "sql": AdapterStore(sqlite_url(workdir / "store.db"))}
    storage: dict[str, Any] = {}
    timings: dict[str, float] = {}
    users = list(records)
    for name, store in backends.items():
        fp32 = [_copy(store, records[u], "float32") for u in users]
        load = []
        for u, saved in zip(users, fp32, strict=True):
            start = time.perf_counter()
            got = store.latest(str(u), records[u].adapter_name)
            load.append((time.perf_counter() - start) * 1000.0)
            if got is None or got.version != saved.version:
                raise RuntimeError(f"{name} store lost the adapter of user {u!r}")
        fp16 = [_copy(store, records[u], "float16") for u in users[:fp16_sample]]
        fp16_err = 0.0
        for u in users[:fp16_sample]:
            back = store.load(str(u), records[u].adapter_name)
            fp16_err = max(fp16_err, *(float(np.abs(back.tensors[k] - records[u].tensors[k])
                                             .max()) for k in back.tensors))
        storage[name] = {
            "bytes_float32": int(np.median([r.size_bytes for r in fp32])),
            "bytes_float16": int(np.median([r.size_bytes for r in fp16])) if fp16 else None,
            "fp16_max_abs_error": fp16_err,
            "stats": store.stats(),
        }
        timings.update(_percentiles(f"load_ms_{name}", load))
    first = next(iter(records.values()))
    storage["parameters_per_adapter"] = int(sum(v.size for v in first.tensors.values()))
    return storage, timings


def _copy(store: Any, record: Any, dtype: str) -> Any:
    return store.save_tensors(
        record.user_id, record.tensors, adapter_name=record.adapter_name, rank=record.rank,
        scaling=record.scaling_factor, training_iterations=record.training_iterations,
        base_model_version=record.base_model_version, metrics=record.metrics, dtype=dtype,
        config=record.config)


def _items_by_user(part: Interactions) -> dict[Any, list[Any]]:
    """User id -> item ids in time order (ties by the log's order)."""
    frame = part.frame.sort_values(["user_idx", "timestamp"], kind="stable")
    return {u: g.tolist() for u, g in frame.groupby("user_id", sort=True)["item_id"]}


def _percentiles(prefix: str, values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, np.float64)
    return {f"{prefix}_p50": float(np.percentile(arr, 50)),
            f"{prefix}_p95": float(np.percentile(arr, 95)),
            f"{prefix}_mean": float(arr.mean())}


__all__ = ["AGE_BANDS", "LoraEvalConfig", "LoraEvalResult", "benchmark_storage",
           "run_lora_eval", "segment_labels"]
