"""``sona ingest``: generate platform feeds, ingest them into the catalog, score resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sona.cli import app

ingest_app = typer.Typer(help="Ingest the nine platform feeds into the catalog (SPEC §4).",
                         no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

_RULES = "eidr,external_id,fuzzy_title,subtitle,embedding"
_NOISE = ("classic", "broad")


def _feeds(data: Path, seed: int, n_movies: int | None, noise: str = "classic") -> Any:
    from sona.data.sources import load_ml100k
    from sona.ingest.feeds import FeedConfig, generate_feeds

    if noise not in _NOISE:
        raise typer.BadParameter(f"unknown noise model {noise!r}; use classic or broad")
    ml = load_ml100k(data)
    return generate_feeds(ml.catalog, ml.interactions.frame,
                          FeedConfig(seed=seed, n_movies=n_movies, noise=noise))  # type: ignore[arg-type]


def _encoder(kind: str, feeds: Any, progress: bool) -> Any:
    if kind == "none":
        return None
    if kind == "minilm":
        from sona.embeddings import EncoderConfig, TextEncoder

        return TextEncoder(EncoderConfig(show_progress=progress))
    if kind == "tfidf":
        from sona.embeddings import TfidfConfig, TfidfEncoder
        from sona.ingest.normalizers import normalize

        corpus = [f"{r.title}. {r.overview or ''}" for r in map(normalize, feeds.records)]
        return TfidfEncoder(TfidfConfig()).fit(corpus)
    raise typer.BadParameter(f"unknown encoder {kind!r}; use minilm, tfidf or none")


def _resolver_config(rules: str, encoder: Any, scorer: str) -> Any:
    from sona.ingest.resolution import ResolverConfig

    chosen = tuple(r.strip() for r in rules.split(",") if r.strip())
    if encoder is None:
        chosen = tuple(r for r in chosen if r != "embedding")
    return ResolverConfig(rules=chosen, title_scorer=scorer)  # type: ignore[arg-type]


def _fmt(value: float | int) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4f}"
    return f"{value:,}"


def _score_table(title: str, first: str, rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=title)
    for col in (first, "links", "TP", "FP", "positives", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == first else "right")
    for row in rows:
        table.add_row(row["rule"], *(_fmt(row[k]) for k in (
            "links", "tp", "fp", "positives", "precision", "recall", "f1")))
    console.print(table)


def print_resolution(report: Any, console: Console) -> None:
    """Per-rule and pairwise (then per-class, look-alike) precision/recall/F1 tables."""
    from dataclasses import asdict

    _score_table(f"Entity resolution: {report.n_records:,} records, {report.n_works:,} works, "
                 f"{report.n_entities:,} entities (rules: links; pairwise: record pairs)",
                 "rule", report.rows(), console)
    if report.classes:
        _score_table("Pairwise scores per noise class (pairs with a record of the class)",
                     "noise class", [asdict(c) for c in report.classes], console)
    if report.lookalikes:
        table = Table(title="False merges on look-alikes (hard negatives)")
        for col in ("kind", "twins", "merged", "false pairs"):
            table.add_column(col, justify="left" if col == "kind" else "right")
        for row in report.lookalikes:
            table.add_row(row.kind, _fmt(row.twins), _fmt(row.merged), _fmt(row.false_pairs))
        console.print(table)


def _onto_seeds(entity_of: dict[str, str], feeds: Any) -> float:
    """Share of records of MovieLens films whose entity is one of the film's ML ids."""
    hits = total = 0
    for raw_id, entity_id in entity_of.items():
        work = feeds.works.get(feeds.truth[raw_id])
        if work is None or not work.item_ids:
            continue
        total += 1
        hits += entity_id in {str(i) for i in work.item_ids}
    return hits / total if total else float("nan")


@ingest_app.command("run")
def run(
    data: Annotated[Path, typer.Option(help="MovieLens 100K folder.")] = Path("datasets/ml-100k"),
    db: Annotated[
        str, typer.Option(help="Catalog database URL.")
    ] = "sqlite:///serving/catalog.db",
    seed: Annotated[int, typer.Option(help="Feed generator seed.")] = 42,
    n_movies: Annotated[
        int | None, typer.Option(help="Sample this many movies (default: all).")
    ] = None,
    encoder: Annotated[str, typer.Option(help="Text encoder: minilm, tfidf or none.")] = "minilm",
    rules: Annotated[
        str, typer.Option(help="Resolution rules in order (comma-separated).")
    ] = _RULES,
    scorer: Annotated[
        str, typer.Option(help="Rule-3 edit distance: levenshtein | osa.")
    ] = "levenshtein",
    save_feeds: Annotated[
        Path | None, typer.Option(help="Also write the raw feeds + truth here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    noise: Annotated[
        str, typer.Option(help="Feed noise model: classic (catalog works only) or broad.")
    ] = "classic",
    movielens: Annotated[
        bool, typer.Option(help="Seed the catalog with the ML-100K items first (ids = ML ids).")
    ] = True,
) -> None:
    """Seed the catalog from MovieLens, then resolve the nine generated feeds onto it."""
    from sona import io
    from sona.catalog import CatalogStore
    from sona.ingest.pipeline import IngestPipeline, load_resolver

    console = Console()
    store = CatalogStore(db)
    if movielens:
        from sona.data.sources import load_ml100k
        from sona.ingest.movielens import movielens_items, seed_catalog

        seeded = seed_catalog(store, movielens_items(load_ml100k(data)))
        console.print(f"MovieLens seed: {seeded.n_items:,} items, {seeded.n_created:,} created, "
                      f"{seeded.n_kept:,} already in the catalog")
    feeds = _feeds(data, seed, n_movies, noise)
    console.print(f"generated {len(feeds.records):,} raw records for {len(feeds.works):,} works "
                  f"on {len(feeds.config.platforms)} platforms (seed {seed})")
    if save_feeds is not None:
        for platform, recs in feeds.by_platform().items():
            io.write_json(save_feeds / f"{platform}.json",
                          [r.model_dump(mode="json") for r in recs])
        io.write_json(save_feeds / "truth.json", feeds.truth)
        console.print(f"raw feeds and ground truth written to {save_feeds}")
    enc = _encoder(encoder, feeds, progress)
    resolver = load_resolver(store, _resolver_config(rules, enc, scorer), encoder=enc)
    report = IngestPipeline(store, resolver, encoder=enc, progress=progress).run(
        feeds.records, truth=feeds.truth)
    if movielens:
        console.print(f"records of MovieLens films resolved onto their MovieLens id: "
                      f"{_onto_seeds(report.entity_of, feeds):.4f}")
    table = Table(title=f"Ingest into {db}")
    table.add_column("step")
    table.add_column("value", justify="right")
    for name, value in (("raw records", report.n_raw), ("normalised", report.n_normalized),
                        ("failed", len(report.failures)), ("entities", report.n_entities),
                        ("created", report.n_created), ("updated", report.n_updated),
                        ("merged", report.n_merged),
                        ("catalog items", store.count())):
        table.add_row(name, f"{value:,}")
    for name, secs in report.seconds.items():
        table.add_row(f"{name} (s)", f"{secs:.2f}")
    console.print(table)
    if report.resolution is not None:
        print_resolution(report.resolution, console)
    store.close()


@ingest_app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option(help="MovieLens 100K folder.")] = Path("datasets/ml-100k"),
    seed: Annotated[int, typer.Option(help="Feed generator seed.")] = 42,
    n_movies: Annotated[
        int | None, typer.Option(help="Sample this many movies (default: all).")
    ] = None,
    encoder: Annotated[str, typer.Option(help="Rule-4 encoder: minilm, tfidf or none.")] = "minilm",
    rules: Annotated[
        str, typer.Option(help="Resolution rules in order (comma-separated).")
    ] = _RULES,
    scorer: Annotated[
        str, typer.Option(help="Rule-3 edit distance: levenshtein | osa.")
    ] = "levenshtein",
    output: Annotated[
        Path | None, typer.Option(help="Write the tables as JSON here.")
    ] = Path("benchmarks/results/ingest-eval.json"),
    noise: Annotated[str, typer.Option(help="Feed noise model: broad or classic.")] = "broad",
    shuffle_seed: Annotated[
        int | None, typer.Option(help="Resolve the records in this seeded random order.")
    ] = None,
    movielens: Annotated[
        bool, typer.Option(help="Resolve onto the ML-100K seed items, as `ingest run` does.")
    ] = True,
) -> None:
    """Resolve generated feeds; print P/R/F1 per rule, per noise class and on look-alikes."""
    import time
    from dataclasses import asdict

    import numpy as np

    from sona import io
    from sona.ingest.evaluation import evaluate_resolution, record_links
    from sona.ingest.normalizers import normalize
    from sona.ingest.resolution import EntityResolver

    console = Console()
    feeds = _feeds(data, seed, n_movies, noise)
    raws = list(feeds.records)
    if shuffle_seed is not None:
        raws = [raws[i] for i in np.random.default_rng(shuffle_seed).permutation(len(raws))]
    enc = _encoder(encoder, feeds, progress=True)
    resolver = EntityResolver(_resolver_config(rules, enc, scorer), encoder=enc)
    if movielens:
        from sona.data.sources import load_ml100k
        from sona.ingest.movielens import movielens_items
        from sona.ingest.pipeline import register_items

        register_items(resolver, movielens_items(load_ml100k(data)))
    records = [normalize(r) for r in raws]
    vectors = resolver.encode_records(records)
    start = time.perf_counter()
    batch = resolver.resolve_batch(records, vectors=vectors)
    seconds = time.perf_counter() - start
    report = evaluate_resolution([r.id for r in raws], batch.resolutions, feeds.truth,
                                 rules=resolver.config.rules, links=record_links(batch.links),
                                 noise=feeds.noise, lookalikes=feeds.lookalikes)
    print_resolution(report, console)
    console.print(f"resolved {len(records):,} records in {seconds:.2f} s")
    onto = _onto_seeds({r.id: res.entity_id for r, res in zip(raws, batch.resolutions,
                                                              strict=True)}, feeds) \
        if movielens else None
    if onto is not None:
        console.print(f"records of MovieLens films resolved onto their MovieLens id: {onto:.4f}")
    if output is not None:
        io.write_json(output, io.json_safe({
            "seed": seed, "n_movies": n_movies, "noise": noise, "encoder": encoder,
            "rules": rules, "scorer": scorer, "shuffle_seed": shuffle_seed,
            "movielens_seed": movielens, "onto_movielens_id": onto,
            "n_records": report.n_records, "n_works": report.n_works,
            "n_entities": report.n_entities, "resolve_seconds": round(seconds, 3),
            "rows": report.rows(), "classes": [asdict(c) for c in report.classes],
            "lookalikes": [asdict(x) for x in report.lookalikes],
            "decided_by": report.decided_by}))
        console.print(f"written {output}")


@ingest_app.command("quality")
def quality(
    db: Annotated[
        str, typer.Option(help="Catalog database URL.")
    ] = "sqlite:///serving/catalog.db",
    threshold: Annotated[float, typer.Option(help="Report items scoring below this.")] = 0.6,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Recalculate every item's quality score and print the low-quality report."""
    from sona.catalog import CatalogStore, utcnow
    from sona.ingest.quality import quality_report, recalculate_quality

    store = CatalogStore(db)
    now = utcnow()
    changed = recalculate_quality(store, now=now)
    report = quality_report(store.iter_items(), now=now, threshold=threshold, limit=limit)
    console = Console()
    console.print(f"{store.count():,} items, {changed:,} scores changed; "
                  f"{report.total_low_quality:,} below {threshold}")
    console.print_json(json.dumps(report.model_dump(mode="json")["low_quality_items"][:limit]))
    store.close()
