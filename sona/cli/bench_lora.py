"""``sona bench lora``: tier-2 LoRA adapters vs the shared TwoTower on ML-100K (SPEC §2.2)."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli.bench import bench_app

_SEGMENTS = ("none", "age", "gender", "occupation", "age_gender")


@bench_app.command("lora")
def lora(
    data: Annotated[Path, typer.Option(help="ML-100K folder (sona data fetch).")] = Path(
        "datasets/ml-100k"),
    out: Annotated[Path, typer.Option(help="JSON to write.")] = Path(
        "benchmarks/results/lora.json"),
    rank: Annotated[int, typer.Option(min=1, max=8, help="LoRA rank r.")] = 4,
    alpha: Annotated[int, typer.Option(min=1, help="LoRA alpha (scaling alpha/r).")] = 8,
    lr: Annotated[float, typer.Option(help="Adam step size of user adapters.")] = 0.1,
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps per user.")] = 10,
    l2: Annotated[float, typer.Option(help="L2 weight on the user-vector change.")] = 0.01,
    segment_by: Annotated[str, typer.Option(
        help=f"Segment adapters by one of {', '.join(_SEGMENTS)}.")] = "age_gender",
    test_events: Annotated[int, typer.Option(min=1, help="Latest events held out.")] = 10,
    adapt_events: Annotated[int, typer.Option(
        min=1, help="Events before those that adapters train on.")] = 10,
    epochs: Annotated[int, typer.Option(min=1, help="TwoTower epochs.")] = 400,
    max_users: Annotated[int, typer.Option(
        "--max-users", "--users", min=0,
        help="Evaluate at most this many users, the first by id (0: all eligible).")] = 0,
    als: Annotated[bool, typer.Option(help="ALS rows: trained factors, and the window "
                                           "folded in with the ALS user step.")] = True,
    pipeline: Annotated[bool, typer.Option(help="Served-pipeline rows, without and with "
                                                "its LoRA source.")] = True,
    pipeline_graph: Annotated[bool, typer.Option(
        help="Keep the pipeline's graph source (LightGCN); --no-pipeline-graph fits "
             "with graph=None (faster).")] = True,
    refit: Annotated[bool, typer.Option(help="Also refit the base with the window "
                                             "events (full-retrain reference).")] = True,
    stratified: Annotated[bool, typer.Option(
        help="Also report TwoTower nDCG@10 on the Microsoft Recommenders protocol "
             "(stratified 75/25, seed 42).")] = True,
    n_boot: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 10_000,
    track: Annotated[bool, typer.Option(help="Log params and metrics to MLflow.")] = True,
) -> None:
    """Per-user and per-segment peft LoRA adapters vs the base TwoTower and strong baselines.

    Protocol: each user's last TEST_EVENTS interactions are the test, the ADAPT_EVENTS before
    them the adaptation window, everything earlier trains the base. Rows: TwoTower base,
    + segment, + user adapters, refit; ALS, ALS + window fold-in; the served pipeline with
    the window as events, without and with its LoRA adapters. Prints nDCG@10 per row with
    paired-bootstrap 95% CIs against the base and against the strongest baseline (the best
    row without adapters), whether LoRA should stay on in the pipeline, per-user training
    and load times for the directory and SQL stores, and adapter sizes (fp32/fp16).
    Set OPENBLAS_NUM_THREADS=1.
    """
    from sona import io
    from sona.data.sources import load_ml100k
    from sona.experiments.lora_eval import LoraEvalConfig, run_lora_eval
    from sona.lora.two_tier import AdapterTrainingConfig
    from sona.models.two_tower import TwoTowerConfig

    if segment_by not in _SEGMENTS:
        raise typer.BadParameter(f"--segment-by must be one of {', '.join(_SEGMENTS)}")
    ml = load_ml100k(data)
    base_cfg = dataclasses.replace(TwoTowerConfig(), n_epochs=epochs)
    config = LoraEvalConfig(test_events=test_events, adapt_events=adapt_events,
                            segment_by=segment_by, refit=refit,  # type: ignore[arg-type]
                            max_users=max_users, n_boot=n_boot, base=base_cfg,
                            als_rows=als, pipeline_rows=pipeline,
                            pipeline=_pipeline_config(data, pipeline_graph))
    adapter = AdapterTrainingConfig(rank=rank, alpha=alpha, learning_rate=lr, n_steps=steps,
                                    l2=l2)
    console = Console()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sona-lora-") as tmp:
        result = run_lora_eval(ml.interactions, ml.users, config, tmp, adapter=adapter)
    report = result.to_dict()
    if stratified:
        report["two_tower_stratified"] = _stratified(ml.interactions, base_cfg)
    report["environment"] = _environment(load_before)
    _print(console, report)
    io.write_json(out, report)
    console.print(f"wrote {out}")
    if track:
        run_id = _track(report, config, adapter)
        console.print(f"MLflow run {run_id}")


def _pipeline_config(data: Path, graph: bool) -> Any:
    """The served defaults, reading the catalog and embedding cache beside ``data``."""
    from sona.pipeline import ContentConfig, PipelineConfig

    root = data.parent  # <data_dir>/ml-100k, the layout of `sona data fetch`
    config = PipelineConfig(content=ContentConfig(cache_dir=str(root / "cache" / "embeddings")),
                            data_dir=str(root))
    return config if graph else dataclasses.replace(config, graph=None)


def _environment(load_before: float) -> dict[str, Any]:
    """CPUs, load average and library versions: timings mean little without them."""
    import platform

    import peft
    import torch

    return {"cpus_usable": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
            "load_avg_1min": {"before": load_before, "after": os.getloadavg()[0]},
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "peft": peft.__version__,
            "python": platform.python_version()}


def _stratified(data: Any, config: Any) -> dict[str, float]:
    """TwoTower on the MS Recommenders ML-100K protocol: mean metrics at k=10 + fit seconds."""
    import time

    from sona.data.splits import stratified_split
    from sona.metrics import evaluate, summarize
    from sona.models.two_tower import TwoTower

    split = stratified_split(data, 0.75, by="user", seed=42)
    start = time.perf_counter()
    model = TwoTower(config).fit(split.train)
    fit_s = time.perf_counter() - start
    users = [u for u in split.test.users.ids_array if u in split.train.users]
    recs = model.recommend(users, k=10)
    scores = summarize(evaluate(recs, users, split.test, k=10,
                                metrics=["ndcg", "precision", "recall", "map"]))
    return {**scores, "fit_s": fit_s}


def _print(console: Console, report: dict[str, Any]) -> None:
    proto = report["protocol"]
    table = Table(title=f"nDCG@{proto['k']} on {proto['users_evaluated']} users "
                        f"({proto['adapt_events']} window events each, "
                        f"{proto['segments']} segments by {proto['segment_by']})")
    strongest = report.get("strongest_baseline")
    for col in ("row", "nDCG", "diff vs base", "95% CI", f"diff vs {strongest}", "95% CI ",
                "Wilcoxon p"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for row in table_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(f"split: {proto['split']}; {proto['users_evaluated']} users; strongest "
                  f"baseline (best row without adapters): {strongest}; bold: CI vs it "
                  "excludes 0")
    decision = report.get("lora_in_pipeline") or {}
    if decision:
        c = decision["comparison"]
        info = report.get("pipeline_info", {})
        console.print(f"pipeline + LoRA vs pipeline w/o LoRA: {c['mean_diff']:+.4f} "
                      f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]; adapter loss "
                      f"{info['adapter_loss']['first']:.4f} -> "
                      f"{info['adapter_loss']['last']:.4f}; lists changed for "
                      f"{info.get('users_list_changed', 0.0):.1%} of users, mean |LoRA term| "
                      f"{info.get('lora_term_abs_mean', 0.0):.2e} -> LoRA on by default: "
                      f"{'yes' if decision['keep_lora_on_by_default'] else 'NO'}")
    t, s = report["timings"], report["storage"]
    cost = Table(title=f"adapter cost (rank {proto['adapter']['rank']}, "
                       f"{s['parameters_per_adapter']} parameters)")
    for col in ("backend", "bytes fp32", "bytes fp16", "load ms p50", "load ms p95"):
        cost.add_column(col, justify="left" if col == "backend" else "right")
    for name in ("directory", "sql"):
        cost.add_row(name, str(s[name]["bytes_float32"]), str(s[name]["bytes_float16"]),
                     f"{t[f'load_ms_{name}_p50']:.3f}", f"{t[f'load_ms_{name}_p95']:.3f}")
    console.print(cost)
    console.print(f"user adapter training: p50 {t['user_train_ms_p50']:.1f} ms, "
                  f"p95 {t['user_train_ms_p95']:.1f} ms; loss "
                  f"{report['adapter_loss']['first']:.3f} -> {report['adapter_loss']['last']:.3f}")
    if "two_tower_stratified" in report:
        st = report["two_tower_stratified"]
        console.print(f"TwoTower, stratified 75/25 (MS Recommenders): nDCG@10 {st['ndcg']:.4f}, "
                      f"precision@10 {st['precision']:.4f}, fit {st['fit_s']:.1f} s")


def table_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One printable row per evaluated row: nDCG, diff + CI vs base and vs the strongest
    baseline, Wilcoxon p vs the strongest baseline ("" where a row is its own reference)."""
    by_base = {c["a"]: c for c in report["comparisons"]}
    by_best = {c["a"]: c for c in report.get("vs_strongest", [])}
    out = []
    for name, value in report["ndcg"].items():
        cells = [name, f"{value:.4f}"]
        for c in (by_base.get(name), by_best.get(name)):
            cells += ["", ""] if c is None else [
                f"{c['mean_diff']:+.4f}", f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"]
        best = by_best.get(name)
        cells.append("" if best is None else f"{best['wilcoxon_p']:.2g}")
        if best is not None and best["significant"]:
            cells[0] = f"[bold]{name}[/bold]"
        out.append(tuple(cells))
    return out


def _track(report: dict[str, Any], config: Any, adapter: Any) -> str:
    from sona.config import flatten, to_dict
    from sona.experiments.spec import TrackingConfig
    from sona.experiments.tracking import Tracker

    tracker = Tracker(TrackingConfig())
    metrics: dict[str, float] = {f"ndcg.{k}": v for k, v in report["ndcg"].items()}
    for c in report["comparisons"]:
        metrics.update({f"diff.{c['a']}": c["mean_diff"], f"ci_low.{c['a']}": c["ci_low"],
                        f"ci_high.{c['a']}": c["ci_high"]})
    for c in report.get("vs_strongest", []):
        metrics.update({f"diff_best.{c['a']}": c["mean_diff"],
                        f"ci_low_best.{c['a']}": c["ci_low"],
                        f"ci_high_best.{c['a']}": c["ci_high"]})
    if report.get("lora_in_pipeline"):
        metrics["lora_keep_on"] = float(report["lora_in_pipeline"]["keep_lora_on_by_default"])
    metrics.update({k: v for k, v in report["timings"].items()})
    metrics.update({"loss_first": report["adapter_loss"]["first"],
                    "loss": report["adapter_loss"]["last"]})
    for name in ("directory", "sql"):
        metrics[f"bytes_fp32.{name}"] = report["storage"][name]["bytes_float32"]
        metrics[f"bytes_fp16.{name}"] = report["storage"][name]["bytes_float16"]
    for k, v in report.get("two_tower_stratified", {}).items():
        metrics[f"stratified.{k}"] = v
    evaluation = {k: v for k, v in to_dict(config).items()
                  if k not in ("base", "als", "pipeline")}
    params = flatten({"adapter": to_dict(adapter), "eval": evaluation,
                      "base": to_dict(config.base), "als": to_dict(config.als),
                      "pipeline": {"graph": config.pipeline.graph is not None,
                                   "lora": to_dict(config.pipeline.lora),
                                   "lora_boost": config.pipeline.lora_boost}})
    with tracker.run("lora-personalization", "sona bench lora") as run:
        run.log_params(params)
        # MLflow metric names allow letters, digits, _ - . / and spaces
        run.log_metrics({re.sub(r"[^\w\-./ ]", "_", k): float(v) for k, v in metrics.items()
                         if v is not None})
        return run.run_id
