"""``sona search``: query the catalog search engine and evaluate it offline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sona.cli import app

search_app = typer.Typer(help="Hybrid catalog search: query it, evaluate BM25/vector/hybrid.",
                         no_args_is_help=True)
app.add_typer(search_app, name="search")

QUERIES = Path("datasets/search-eval/ml100k-queries.jsonl")


def _engine(data: Path, cache_dir: str, db: str):  # noqa: ANN202 (typer: lazy heavy imports)
    """The engine the service builds: documents from the catalog (seeded from ``data`` when
    empty), so what is evaluated is what is served."""
    from sona.catalog import CatalogStore
    from sona.embeddings import EncoderConfig
    from sona.ingest.movielens import catalog_documents
    from sona.search.engine import SearchConfig, SearchEngine
    from sona.search.faiss_index import FaissIndexConfig

    store = CatalogStore(db)
    docs = catalog_documents(store, data)
    store.close()
    # 1,682 items: exact (flat) inner product is both fastest and exact at this size
    config = SearchConfig(vector=FaissIndexConfig(kind="flat"),
                          encoder=EncoderConfig(cache_dir=cache_dir))
    return docs, SearchEngine(config).build(docs)


@search_app.command("query")
def query(
    text: Annotated[str, typer.Argument(help="What to search for, e.g. '90s sci-fi comedies'.")],
    mode: Annotated[str, typer.Option(help="hybrid, keyword or vector.")] = "hybrid",
    genre: Annotated[list[str] | None, typer.Option(help="Genre filter (repeatable).")] = None,
    year_min: Annotated[int | None, typer.Option(help="Released in or after this year.")] = None,
    year_max: Annotated[int | None, typer.Option(help="Released in or before this year.")] = None,
    k: Annotated[int, typer.Option(help="Results to show.")] = 10,
    data: Annotated[Path, typer.Option(help="MovieLens 100K folder.")] = Path("datasets/ml-100k"),
    cache_dir: Annotated[
        str, typer.Option(help="Embedding cache folder.")
    ] = "datasets/cache/embeddings",
    db: Annotated[
        str, typer.Option(help="Catalog database URL (seeded from --data when empty).")
    ] = "sqlite:///serving/catalog.db",
) -> None:
    """Search the catalog and print the results, the parsed intent and the facets."""
    from sona.search.filters import SearchFilters

    docs, engine = _engine(data, cache_dir, db)
    filters = SearchFilters(genres=tuple(genre or ()), year_min=year_min, year_max=year_max)
    result = engine.search(text, filters=filters, page_size=k, mode=mode)  # type: ignore[arg-type]
    table = Table(title=f"{result.total_count} results for {text!r} ({mode}, "
                        f"{result.search_time_ms:.1f} ms)")
    for col in ("#", "id", "title", "year", "genres", "score", "why"):
        table.add_column(col)
    for i, hit in enumerate(result.hits, start=1):
        row = docs.iloc[hit.position]
        year = "" if row["year"] != row["year"] else str(int(row["year"]))
        table.add_row(str(i), str(hit.item_id), row["title"], year, ", ".join(row["genres"]),
                      f"{hit.score:.3f}", "; ".join(hit.match_reasons))
    console = Console()
    console.print(table)
    console.print(f"parsed: {json.dumps(result.parsed)}")
    console.print(f"facets: {json.dumps({k: v[:5] for k, v in result.facets.items()})}")


@search_app.command("eval")
def evaluate(
    queries: Annotated[Path, typer.Option(help="Labelled query set (JSON lines).")] = QUERIES,
    regenerate: Annotated[
        bool, typer.Option(help="Rebuild the query set from the catalog first.")
    ] = False,
    split: Annotated[str, typer.Option(help="Queries to report: test, dev or all.")] = "test",
    tune: Annotated[
        bool, typer.Option(help="Grid-search fusion and ranking weights on dev.")
    ] = False,
    data: Annotated[Path, typer.Option(help="MovieLens 100K folder.")] = Path("datasets/ml-100k"),
    cache_dir: Annotated[
        str, typer.Option(help="Embedding cache folder.")
    ] = "datasets/cache/embeddings",
    db: Annotated[
        str, typer.Option(help="Catalog database URL (seeded from --data when empty).")
    ] = "sqlite:///serving/catalog.db",
    out: Annotated[
        Path, typer.Option(help="Where to write the summary JSON.")
    ] = Path("benchmarks/results/search-eval.json"),
) -> None:
    """nDCG@10 and MRR of BM25, vector and hybrid search on the labelled query set."""
    from sona import io
    from sona.search import evaluation as ev

    if split not in ("test", "dev", "all"):
        raise typer.BadParameter("split must be test, dev or all")
    docs, engine = _engine(data, cache_dir, db)
    if regenerate or not queries.exists():
        from sona.data.sources import load_ml100k

        frame = load_ml100k(data).interactions.frame
        counts = {str(k): v for k, v in frame.groupby("item_id").size().items()}
        ev.write_query_set(queries, ev.build_query_set(docs, counts))
    qs = ev.read_query_set(queries, int_ids=False)  # catalog ids are strings ("50")
    console = Console()
    report: dict[str, object] = {"queries": str(queries), "split": split}
    if tune:
        grid = ev.tune(engine, qs)
        best = grid.iloc[0]
        console.print(f"best on dev: {best.to_dict()}")
        report["tuning_top5"] = grid.head(5).to_dict(orient="records")
        fusion = str(best["fusion"])
        ranking = ev.RankingConfig(**{f.name: float(best[f.name]) for f in
                                      dataclasses.fields(ev.RankingConfig)})
        engine = engine.with_config(fusion=fusion, ranking=ranking)
    chosen = [q for q in qs if split == "all" or q.split == split]
    per_query = ev.evaluate_methods(engine, chosen)
    summary = ev.summarize(per_query)
    table = Table(title=f"search eval: {len(chosen)} {split} queries "
                        f"(fusion default: {engine.config.fusion})")
    table.add_column("method")
    for col in summary.columns:
        table.add_column(col)
    for name, row in summary.iterrows():
        table.add_row(str(name), *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    report["summary"] = summary.reset_index(names="method").to_dict(orient="records")
    report["ranking"] = dataclasses.asdict(engine.config.ranking)
    report["fusion"] = engine.config.fusion
    io.write_json(out, report)
    console.print(f"wrote {out}")
