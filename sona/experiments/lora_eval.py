"""Does tier-2 LoRA personalisation help? Base TwoTower vs base + adapters (SPEC §2.2),
and against the strong baselines: ALS with the window folded in, and the served pipeline
with and without its LoRA source.

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

Strong baselines on the same split and users (:func:`als_rows`, :func:`pipeline_rows`):

- ``ALS``: the tuned ALS fitted on the base part, user factors as trained;
- ``ALS + window fold-in``: per user, the ALS user step
  (:meth:`sona.pipeline.sources.ModelSource.fold_in`) over base-part history + window items:
  serve-time personalisation without any adapter; ``ALS fold-in, window only`` solves the
  same step over the window items alone (the user as if new: recency only);
- ``pipeline w/o LoRA`` / ``pipeline + LoRA``: :class:`~sona.pipeline.Pipeline` fitted on
  the base part; each user's state carries the window as viewing events (full views with
  their rating, decay reference = the user's last window event) and, for the LoRA row, an
  adapter trained on those events exactly as the service does
  (:func:`train_pipeline_adapter`). Lists come from ``Pipeline.rank`` (watched excluded,
  no request context).

Every row is also compared with the *strongest baseline*: the row without adapters
(``base``, ``refit``, ALS rows, ``pipeline w/o LoRA``) with the highest mean nDCG.

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
import scipy.sparse as sp

from sona.data.interactions import Interactions
from sona.data.splits import leave_last_out
from sona.experiments.stats import compare
from sona.metrics import evaluate
from sona.models.als import ALS, ALSConfig
from sona.models.two_tower import TwoTower, TwoTowerConfig
from sona.pipeline import Pipeline, PipelineConfig
from sona.profile import ViewingEvent
from sona.types import Recommendations

log = logging.getLogger(__name__)

#: MovieLens-1M age bands (lower bounds), used for ML-100K's exact ages
AGE_BANDS = (0, 18, 25, 35, 45, 50, 56)

#: row names of the strong baselines and the pipeline
ALS_ROW, ALS_FOLD_IN_ROW = "ALS", "ALS + window fold-in"
ALS_WINDOW_ONLY_ROW = "ALS fold-in, window only"
PIPELINE_ROW, PIPELINE_LORA_ROW = "pipeline w/o LoRA", "pipeline + LoRA"
#: rows that use no adapter: candidates for the strongest baseline
BASELINE_ROWS = ("base", "refit (base+window)", ALS_ROW, ALS_FOLD_IN_ROW, ALS_WINDOW_ONLY_ROW,
                 PIPELINE_ROW)


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
    # ALS rows (trained factors, and the window folded in with the ALS user step)
    als_rows: bool = True
    # ALS settings (default: the tuned config of sona.models.als)
    als: ALSConfig = field(default_factory=ALSConfig)
    # served-pipeline rows, with and without its LoRA source
    pipeline_rows: bool = True
    # pipeline settings (default: the served defaults, weights and MMR λ fitted)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


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
    # name of the strongest row without adapters, and every other row compared with it
    strongest_baseline: str | None = None
    vs_strongest: list[dict[str, Any]] = field(default_factory=list)
    # "pipeline + LoRA" vs "pipeline w/o LoRA" and what it means for the default
    lora_in_pipeline: dict[str, Any] = field(default_factory=dict)
    # the fitted pipeline (weights, λ) and its adapters (loss, size of the LoRA term)
    pipeline_info: dict[str, Any] = field(default_factory=dict)

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
                  base: TwoTower | None = None,
                  pipeline: Pipeline | None = None) -> LoraEvalResult:
    """Run the protocol in the module docstring.

    Args:
        data: the full interaction log (timestamps required).
        users: user table for segments (``user_id`` + demographics), or None.
        config: protocol settings.
        workdir: folder receiving the adapter stores (``adapters/``, ``adapters.db``).
        adapter: :class:`~sona.lora.two_tier.AdapterTrainingConfig` (default settings
            when None).
        base: a TwoTower already fitted on this protocol's base split (skips the fit).
        pipeline: a Pipeline already fitted on this protocol's base split (skips its fit).

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
    pipeline_info: dict[str, Any] = {}
    if config.als_rows:
        start = time.perf_counter()
        als = ALS(config.als).fit(base_train)
        timings["als_fit_s"] = time.perf_counter() - start
        for name, recs in als_rows(als, eligible, window_items, config.k).items():
            rows[name] = ndcg(recs)
    if config.pipeline_rows:
        if pipeline is None:
            start = time.perf_counter()
            pipeline = Pipeline(config.pipeline).fit(base_train)
            timings["pipeline_fit_s"] = time.perf_counter() - start
        start = time.perf_counter()
        recs_by_row, pipeline_info = pipeline_rows(pipeline, eligible,
                                                   window_events(window), config.k)
        timings["pipeline_rows_s"] = time.perf_counter() - start
        for name, recs in recs_by_row.items():
            rows[name] = ndcg(recs)
    comparisons = [compare(values, rows["base"], name_a=name, name_b="base", metric="ndcg",
                           n_boot=config.n_boot).to_dict()
                   for name, values in rows.items() if name != "base"]
    strongest, vs_strongest = compare_with_strongest(rows, config.n_boot)
    lora_in_pipeline = lora_decision(rows, config.n_boot)
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
        "eligible": "users with >= adapter min_events window events on items the base model "
                    "knows and >= 1 test event; every row ranks items outside base history "
                    "and window",
    }
    if config.als_rows:
        protocol["als"] = dataclasses.asdict(config.als)
    if config.pipeline_rows:
        protocol["pipeline"] = dataclasses.asdict(config.pipeline)
    losses = [r.metrics for r in records.values()]
    return LoraEvalResult(
        protocol=protocol, ndcg={k: float(np.nanmean(v)) for k, v in rows.items()},
        comparisons=comparisons, timings=timings, storage=storage,
        adapter_loss={"first": float(np.mean([m["loss_first"] for m in losses])),
                      "last": float(np.mean([m["loss"] for m in losses]))},
        per_user={k: v.tolist() for k, v in rows.items()}, strongest_baseline=strongest,
        vs_strongest=vs_strongest, lora_in_pipeline=lora_in_pipeline,
        pipeline_info=pipeline_info)


def window_events(window: Interactions) -> dict[Any, list[ViewingEvent]]:
    """User id -> the window as SPEC viewing events, oldest first.

    MovieLens logs ratings, not watch time: every event is a full view (completion 1)
    carrying its star rating (None where the log has none), not a rewatch, not dismissed.
    """
    frame = window.frame.sort_values(["user_idx", "timestamp"], kind="stable")
    ratings = frame["rating"].to_numpy(np.float64) if "rating" in frame.columns else \
        np.full(len(frame), np.nan)
    out: dict[Any, list[ViewingEvent]] = {}
    for u, i, t, r in zip(frame["user_id"].tolist(), frame["item_id"].tolist(),
                          frame["timestamp"].to_numpy(np.float64), ratings, strict=True):
        out.setdefault(u, []).append(ViewingEvent(
            content_id=i, timestamp=float(t), completion_rate=1.0,
            rating=None if np.isnan(r) else int(round(r))))
    return out


def als_rows(model: ALS, users: list[Any], window_items: Mapping[Any, list[Any]],
             k: int) -> dict[str, Recommendations]:
    """ALS lists without and with each user's window folded in.

    ``ALS`` scores with the user factors learned on the base part. ``ALS + window fold-in``
    recomputes each user's factor with the ALS user step over base history + window items
    (:meth:`~sona.pipeline.sources.ModelSource.fold_in`, on ``scorer_export(model)``: the
    step serving applies to new users); ``ALS fold-in, window only`` over the window items
    alone. Every row excludes base history and window items.
    """
    from sona.pipeline.sources import ModelSource
    from sona.ranking.topk import topk

    source = ModelSource("collaborative", model)
    graph = source.reference_graph()
    user_idx = model.users_.numbers(users)
    history = sp.csr_matrix(model.seen_)[user_idx]
    n_items = history.shape[1]
    exclude = sp.lil_matrix((len(users), n_items), dtype=np.float32)
    folded = np.zeros((len(users), source.export.input_dim), np.float32)
    recent = np.zeros_like(folded)
    for row, u in enumerate(users):
        known = model.items_.numbers(list(window_items.get(u, [])), missing="negative")
        watched = np.union1d(history.indices[history.indptr[row]:history.indptr[row + 1]],
                             known[known >= 0]).astype(np.int64)
        exclude[row, watched] = 1.0
        folded[row] = source.fold_in(watched)
        window_only = np.unique(known[known >= 0]).astype(np.int64)
        if len(window_only):
            recent[row] = source.fold_in(window_only)
    excl = exclude.tocsr()
    trained = np.asarray(source.export.arrays["user_factors"], np.float32)[user_idx]
    out = {}
    for name, inputs in ((ALS_ROW, trained), (ALS_FOLD_IN_ROW, folded),
                         (ALS_WINDOW_ONLY_ROW, recent)):
        (scores,) = graph({source.input_name: inputs})
        idx, top = topk(np.asarray(scores, np.float64), k, exclude=excl)
        out[name] = Recommendations(model.items_.ids(idx), top)
    return out


def train_pipeline_adapter(pipeline: Pipeline, state: Any,
                           events: list[ViewingEvent]) -> Any:
    """The user's adapter as ``Personalization.train`` trains it, or None below min_events.

    Same inputs as the service: the pipeline's LoRA config, shared ``A``
    (``features_.lora_base``), content vectors of the most recent ``max_events`` events on
    known items, labels = engagement weights without the dismissal term, the user's
    preference vector and watch count, starting from zeros (no earlier adapter).
    """
    from sona.lora import train_adapter
    from sona.profile import engagement_weight

    cfg = pipeline.config.lora
    recent = list(events)[-cfg.max_events:]
    idx = pipeline.items_.numbers([e.content_id for e in recent], missing="negative") \
        if recent else np.empty(0, np.int64)
    usable = [(e, int(i)) for e, i in zip(recent, idx, strict=True) if i >= 0]
    if len(usable) < cfg.min_events:
        return None
    f = pipeline.features_
    rows = np.array([i for _, i in usable], np.int64)
    labels = np.array([engagement_weight(e, include_dismissal=False) for e, _ in usable])
    return train_adapter(f.lora_base, None, f.vectors[rows], labels, state.preference,
                         interaction_count=state.watch_count, config=cfg)


#: LoRA multiplier of SPEC §2.2, used by the "pipeline + LoRA" row
SPEC_LORA_BOOST = 0.3


def pipeline_rows(pipeline: Pipeline, users: list[Any],
                  events: Mapping[Any, list[ViewingEvent]],
                  k: int) -> tuple[dict[str, Recommendations], dict[str, Any]]:
    """The served pipeline's lists with the window as stored events, without and with LoRA.

    Each user's state is ``pipeline.state(user, events=window, now=last window event)``;
    the LoRA row adds the adapter of :func:`train_pipeline_adapter`. Lists are
    ``pipeline.rank(states, k)`` (watched items excluded, no request context).

    Returns:
        ``({row: recommendations}, info)``: info holds the fitted weights and λ, adapter
        counts, losses and training times, the size of the LoRA term in the LoRA lists and
        the share of users whose list LoRA changes.
    """
    plain, boosted = [], []
    losses_first, losses_last, train_ms = [], [], []
    for u in users:
        ev = list(events.get(u, []))
        now = max((e.timestamp for e in ev), default=None)
        state = pipeline.state(u, events=ev, now=now)
        plain.append(state)
        trained = train_pipeline_adapter(pipeline, state, ev)
        if trained is None:
            boosted.append(state)
            continue
        losses_first.append(trained.losses[0])
        losses_last.append(trained.losses[-1])
        train_ms.append(trained.duration_ms)
        boosted.append(pipeline.state(u, events=ev, lora_b=trained.user_matrix,
                                      adapter_version=1, now=now))
    out: dict[str, Recommendations] = {}
    ranked = {}
    # the LoRA row boosts with the SPEC's 0.3 whatever the pipeline's default is (the default
    # is what this comparison decides)
    boost = pipeline.config.lora_boost or SPEC_LORA_BOOST
    for name, states in ((PIPELINE_ROW, plain), (PIPELINE_LORA_ROW, boosted)):
        ranked[name] = pipeline.rank(states, k, lora_boost=boost)
        out[name] = Recommendations(pipeline.items_.ids(ranked[name].idx),
                                    ranked[name].scores)
    a, b = ranked[PIPELINE_ROW].idx, ranked[PIPELINE_LORA_ROW].idx
    lora_term = np.abs(ranked[PIPELINE_LORA_ROW].lora[b >= 0])
    info: dict[str, Any] = {
        "weights": pipeline.weights, "mmr_lambda": pipeline.mmr_lambda,
        "lora": dataclasses.asdict(pipeline.config.lora),
        "lora_boost": boost,
        "users_with_adapter": len(train_ms),
        "adapter_loss": {"first": _mean(losses_first), "last": _mean(losses_last)},
        "adapter_train_ms": _percentiles("train_ms", train_ms) if train_ms else {},
        "lora_term_abs_mean": float(lora_term.mean()) if lora_term.size else 0.0,
        "lora_term_abs_max": float(lora_term.max()) if lora_term.size else 0.0,
        "users_list_changed": float(np.mean(np.any(a != b, axis=1))) if len(a) else 0.0,
        "users_set_changed": float(np.mean([set(x) != set(y) for x, y in zip(a, b,
                                                                            strict=True)]))
        if len(a) else 0.0,
    }
    return out, info


def compare_with_strongest(rows: Mapping[str, np.ndarray],
                           n_boot: int) -> tuple[str, list[dict[str, Any]]]:
    """The strongest row without adapters (highest mean) and every other row vs it."""
    baselines = [name for name in rows if name in BASELINE_ROWS]
    strongest = max(baselines, key=lambda name: float(np.nanmean(rows[name])))
    return strongest, [compare(values, rows[strongest], name_a=name, name_b=strongest,
                               metric="ndcg", n_boot=n_boot).to_dict()
                       for name, values in rows.items() if name != strongest]


def lora_decision(rows: Mapping[str, np.ndarray], n_boot: int) -> dict[str, Any]:
    """``pipeline + LoRA`` vs ``pipeline w/o LoRA``; LoRA stays on only if it wins.

    "Wins" means a positive mean difference whose 95% paired-bootstrap CI excludes 0.
    Empty when the pipeline rows were not computed.
    """
    if PIPELINE_ROW not in rows or PIPELINE_LORA_ROW not in rows:
        return {}
    c = compare(rows[PIPELINE_LORA_ROW], rows[PIPELINE_ROW], name_a=PIPELINE_LORA_ROW,
                name_b=PIPELINE_ROW, metric="ndcg", n_boot=n_boot).to_dict()
    stays_on = bool(c["ci_low"] > 0)
    return {"comparison": c, "rule": "LoRA stays on by default only if pipeline + LoRA beats "
                                     "pipeline w/o LoRA: mean diff > 0 with the 95% CI above 0",
            "lora_beats_no_lora": stays_on, "keep_lora_on_by_default": stays_on}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


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


__all__ = ["AGE_BANDS", "ALS_FOLD_IN_ROW", "ALS_ROW", "ALS_WINDOW_ONLY_ROW", "BASELINE_ROWS",
           "PIPELINE_LORA_ROW", "PIPELINE_ROW", "LoraEvalConfig", "LoraEvalResult", "als_rows",
           "benchmark_storage", "compare_with_strongest", "lora_decision", "pipeline_rows",
           "run_lora_eval", "segment_labels", "train_pipeline_adapter", "window_events"]
