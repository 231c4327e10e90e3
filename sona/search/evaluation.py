"""Offline search evaluation: a labelled query set built from the catalog, and nDCG@k / MRR
for BM25, vector and hybrid search (``sona search eval``).

The query set (seeded, see ``datasets/search-eval/README.md``) has two families:

- **known-item** queries with one right answer: the exact title, a partial title (a
  contiguous run of about half its words), a title with one typo in a long word, and the
  original/foreign title of items that have one;
- **intent** queries ("90s sci-fi comedies", "westerns before 1960") whose relevant items
  come from metadata: every item matching all constraints is relevant, gain 2 when it has at
  least ``well_known`` ratings, else 1 (graded nDCG rewards putting known films first).

Each query is tagged ``dev`` or ``test`` (a seeded half split): weights and the fusion method
are chosen on ``dev`` (:func:`tune`) and reported on ``test``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sona import io
from sona.metrics import mrr_at_k, ndcg_at_k
from sona.search.engine import SearchEngine
from sona.search.fusion import RankingConfig
from sona.search.text_index import STOPWORDS, words

log = logging.getLogger(__name__)

# user-style spellings of canonical genres (plain names first)
GENRE_PHRASES: dict[str, tuple[str, ...]] = {
    "action": ("action", "action movies"), "adventure": ("adventure", "adventure films"),
    "animation": ("animated", "animation"), "comedy": ("comedies", "comedy"),
    "crime": ("crime", "crime movies"), "documentary": ("documentaries", "documentary"),
    "drama": ("dramas", "drama"), "family": ("family", "family movies"),
    "fantasy": ("fantasy", "fantasy films"), "horror": ("horror", "horror movies"),
    "musical": ("musicals", "musical"), "mystery": ("mysteries", "mystery"),
    "romance": ("romance", "romance movies"), "sci_fi": ("sci-fi", "science fiction"),
    "thriller": ("thrillers", "thriller"), "war": ("war movies", "war"),
    "western": ("westerns", "western"),
}
DECADE_PHRASES: tuple[str, ...] = ("{d2}s", "from the {d2}s", "{d4}s", "of the {d4}s")

METHODS: dict[str, dict[str, Any]] = {
    "bm25": {"mode": "keyword"},
    "vector": {"mode": "vector"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-weighted": {"mode": "hybrid", "fusion": "weighted"},
    "hybrid-no-intent": {"mode": "hybrid", "use_intent": False},
}
"""Methods compared by ``sona search eval`` (keyword arguments of ``SearchEngine.search``)."""


@dataclass(frozen=True)
class EvalQuery:
    """One labelled query: ``relevant`` maps item id -> gain."""

    qid: str
    query: str
    kind: str  # exact, partial, typo, alternate, intent
    split: str  # dev or test
    relevant: dict[Any, float]

    def to_json(self) -> dict[str, Any]:
        """JSON-lines record (ids as strings, with their type)."""
        return {"qid": self.qid, "query": self.query, "kind": self.kind, "split": self.split,
                "relevant": {str(k): v for k, v in self.relevant.items()}}


def _typo(word: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(1, len(word) - 1))
    op = rng.choice(["delete", "swap", "replace", "insert"])
    letters = string.ascii_lowercase
    if op == "delete":
        return word[:i] + word[i + 1:]
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    letter = letters[int(rng.integers(len(letters)))]
    if op == "replace":
        letter = letter if letter != word[i] else letters[(letters.index(letter) + 1) % 26]
        return word[:i] + letter + word[i + 1:]
    return word[:i] + letter + word[i:]


def _known_item(docs: pd.DataFrame, rng: np.random.Generator, n: int, kind: str,
                pool: np.ndarray) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    used: set[str] = set()
    for pos in rng.permutation(pool):
        row = docs.iloc[int(pos)]
        toks = words(row["title"])
        content = [t for t in toks if t not in STOPWORDS and len(t) > 1]
        query = None
        if kind == "exact":
            query = " ".join(toks)
        elif kind == "partial" and len(content) >= 2:
            size = max(2 if len(content) >= 3 else 1, (len(content) + 1) // 2)
            start = int(rng.integers(0, len(content) - size + 1))
            query = " ".join(content[start:start + size])
            if size == 1 and len(query) < 6:  # "good", "metal": not a usable known-item query
                query = None
        elif kind == "typo":
            long = [i for i, t in enumerate(toks) if len(t) >= 5 and t.isalpha()]
            if long:
                i = long[int(rng.integers(len(long)))]
                query = " ".join(toks[:i] + [_typo(toks[i], rng)] + toks[i + 1:])
        elif kind == "alternate":
            alts = [a for a in row["alternate_titles"] if "(" not in a and "," not in a]
            if alts:
                query = " ".join(words(alts[0]))
        if query and query not in used:
            used.add(query)
            out.append((query, row["item_id"]))
        if len(out) == n:
            break
    return out


def _intent_specs(docs: pd.DataFrame) -> list[tuple[tuple[str, ...], int | None, int | None,
                                                     str]]:
    """All (genres, year_min, year_max, shape) combinations worth asking about."""
    specs: list[tuple[tuple[str, ...], int | None, int | None, str]] = []
    singles = [(g,) for g in GENRE_PHRASES]
    pairs = [("comedy", "romance"), ("action", "sci_fi"), ("comedy", "sci_fi"),
             ("crime", "thriller"), ("horror", "sci_fi"), ("action", "comedy"),
             ("animation", "family"), ("drama", "war"), ("adventure", "family"),
             ("comedy", "drama"), ("mystery", "thriller"), ("crime", "comedy")]
    for decade in (1950, 1960, 1970, 1980, 1990):
        for genres in singles + pairs:
            specs.append((genres, decade, decade + 9, "decade"))
    for genres in singles:
        specs.append((genres, None, None, "plain"))
        specs.append((genres, None, 1969, "before"))
    for year in (1994, 1995, 1996, 1997):
        for genres in (("comedy",), ("drama",), ("action",), ("thriller",), ("romance",)):
            specs.append((genres, year, year, "year"))
    return specs


def _phrase(genres: tuple[str, ...], lo: int | None, hi: int | None, shape: str,
            rng: np.random.Generator) -> str:
    names = [GENRE_PHRASES[g][int(rng.integers(len(GENRE_PHRASES[g])))] for g in genres]
    if len(names) == 2:
        names = [names[0].split()[0], names[1]]  # "sci-fi comedies", "crime thrillers"
    genre_text = " ".join(names)
    if shape == "decade" and lo is not None:
        tpl = DECADE_PHRASES[int(rng.integers(len(DECADE_PHRASES)))]
        when = tpl.format(d2=str(lo)[2:], d4=lo)
        return f"{when} {genre_text}" if not when.startswith(("from", "of")) else \
            f"{genre_text} {when}"
    if shape == "before" and hi is not None:
        return f"{genre_text} before {hi + 1}"
    if shape == "year":
        return f"{genre_text} from {lo}"
    return genre_text


def build_query_set(documents: pd.DataFrame, rating_counts: Mapping[Any, int], *,
                    seed: int = 42, n_known: int = 100, n_alternate: int = 40,
                    n_intent: int = 150, min_ratings: int = 20, well_known: int = 50,
                    min_relevant: int = 3) -> list[EvalQuery]:
    """Generate the labelled query set (see module docstring).

    Args:
        documents: search documents (:func:`~sona.search.documents.documents_from_catalog`).
        rating_counts: item id -> number of ratings (known items are drawn from items with
            at least ``min_ratings``; intent gains use ``well_known``).
        n_known: queries per known-item kind (exact, partial, typo).
    """
    rng = np.random.default_rng(seed)
    counts = np.array([rating_counts.get(i, 0) for i in documents["item_id"]])
    pool = np.flatnonzero(counts >= min_ratings)
    queries: list[EvalQuery] = []
    for kind, n in (("exact", n_known), ("partial", n_known), ("typo", n_known),
                    ("alternate", n_alternate)):
        for query, item in _known_item(documents, rng, n, kind, pool):
            queries.append(EvalQuery(f"{kind}-{len(queries):04d}", query, kind, "",
                                     {item: 1.0}))
    genre_sets = [set(g) for g in documents["genres"]]
    years = documents["year"].to_numpy()
    specs = _intent_specs(documents)
    kept = 0
    for idx in rng.permutation(len(specs)):
        genres, lo, hi, shape = specs[int(idx)]
        match = [i for i, gs in enumerate(genre_sets)
                 if set(genres) <= gs and (lo is None or years[i] >= lo)
                 and (hi is None or years[i] <= hi)]
        if len(match) < min_relevant:
            continue
        relevant = {documents["item_id"].iat[i]: (2.0 if counts[i] >= well_known else 1.0)
                    for i in match}
        query = _phrase(genres, lo, hi, shape, rng)
        queries.append(EvalQuery(f"intent-{len(queries):04d}", query, "intent", "", relevant))
        kept += 1
        if kept == n_intent:
            break
    split = rng.permutation(len(queries)) % 2
    return [dataclasses.replace(q, split="dev" if s == 0 else "test")
            for q, s in zip(queries, split, strict=True)]


def write_query_set(path: str | Path, queries: Iterable[EvalQuery]) -> None:
    """Write queries as JSON lines."""
    io.write_text(path, "".join(json.dumps(q.to_json()) + "\n" for q in queries))


def read_query_set(path: str | Path, *, int_ids: bool = True) -> list[EvalQuery]:
    """Read a JSON-lines query set (ids converted to int when ``int_ids``)."""
    out = []
    for line in io.read_lines(path):
        rec = json.loads(line)
        rel = {(int(k) if int_ids else k): float(v) for k, v in rec["relevant"].items()}
        out.append(EvalQuery(rec["qid"], rec["query"], rec["kind"], rec["split"], rel))
    return out


def run_queries(engine: SearchEngine, queries: Sequence[EvalQuery], *, k: int = 10,
                **search_kwargs: Any) -> pd.DataFrame:
    """Per-query ``ndcg`` (graded), ``mrr`` and ``latency_ms`` for one method."""
    ids = engine.documents_["item_id"].to_numpy()
    pad = -1 if np.issubdtype(ids.dtype, np.integer) else ""
    rec = np.full((len(queries), k), pad, dtype=ids.dtype if pad == -1 else object)
    latency = np.zeros(len(queries))
    for i, q in enumerate(queries):
        res = engine.search(q.query, page_size=k, **search_kwargs)
        got = [h.item_id for h in res.hits][:k]
        rec[i, :len(got)] = got
        latency[i] = res.search_time_ms
    relevant = [q.relevant for q in queries]
    return pd.DataFrame({
        "qid": [q.qid for q in queries], "kind": [q.kind for q in queries],
        "split": [q.split for q in queries],
        "ndcg": ndcg_at_k(rec, relevant, k, graded=True), "mrr": mrr_at_k(rec, relevant, k),
        "latency_ms": latency,
    })


def evaluate_methods(engine: SearchEngine, queries: Sequence[EvalQuery], *, k: int = 10,
                     methods: Mapping[str, Mapping[str, Any]] = METHODS) -> pd.DataFrame:
    """Per-query metrics of every method, stacked with a ``method`` column."""
    frames = []
    for name, kwargs in methods.items():
        frame = run_queries(engine, queries, k=k, **kwargs)
        frame.insert(0, "method", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def summarize(per_query: pd.DataFrame) -> pd.DataFrame:
    """Mean nDCG/MRR per method: overall, known-item, intent and per kind (rows = method)."""
    def block(frame: pd.DataFrame, label: str) -> pd.DataFrame:
        g = frame.groupby("method", sort=False)[["ndcg", "mrr"]].mean()
        return g.rename(columns={"ndcg": f"ndcg@10 {label}", "mrr": f"mrr {label}"})

    known = per_query[per_query["kind"] != "intent"]
    intent = per_query[per_query["kind"] == "intent"]
    parts = [block(per_query, "all"), block(known, "known-item"), block(intent, "intent")]
    for kind in ("exact", "partial", "typo", "alternate"):
        sub = per_query[per_query["kind"] == kind]
        if len(sub):
            parts.append(block(sub, kind)[[f"ndcg@10 {kind}"]])
    lat = per_query.groupby("method", sort=False)["latency_ms"].median().rename("p50 ms")
    return pd.concat([*parts, lat], axis=1).round(4)


def ranking_grid() -> list[RankingConfig]:
    """Candidate ranking weights (sum to 1) searched by :func:`tune`."""
    grid = []
    for vector in (0.3, 0.45, 0.6):
        for keyword in (0.2, 0.35, 0.5):
            for quality in (0.0, 0.1, 0.2):
                for popularity in (0.0, 0.1):
                    for freshness in (0.0, 0.05):
                        total = vector + keyword + quality + popularity + freshness
                        v, kw, q, p = (round(x / total, 6) for x in
                                       (vector, keyword, quality, popularity))
                        grid.append(RankingConfig(
                            vector=v, keyword=kw, quality=q, popularity=p,
                            freshness=max(0.0, round(1.0 - v - kw - q - p, 6))))
    return grid


def tune(engine: SearchEngine, queries: Sequence[EvalQuery], *, k: int = 10,
         grid: Sequence[RankingConfig] | None = None) -> pd.DataFrame:
    """Mean dev nDCG@k of each (fusion, ranking weights) pair, best first."""
    dev = [q for q in queries if q.split == "dev"]
    rows = []
    for fusion in ("rrf", "weighted"):
        for cfg in grid or ranking_grid():
            variant = engine.with_config(ranking=cfg, fusion=fusion)
            frame = run_queries(variant, dev, k=k)
            rows.append({"fusion": fusion, **dataclasses.asdict(cfg),
                         "ndcg": float(frame["ndcg"].mean()), "mrr": float(frame["mrr"].mean())})
    return pd.DataFrame(rows).sort_values(["ndcg", "mrr"], ascending=False,
                                          ignore_index=True)


__all__ = [
    "GENRE_PHRASES", "METHODS", "EvalQuery", "build_query_set", "evaluate_methods",
    "ranking_grid", "read_query_set", "run_queries", "summarize", "tune", "write_query_set",
]
