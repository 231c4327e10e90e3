"""Search benchmark: index build time and query latency on a large synthetic catalog.

No public 100k-title catalog ships in a package, so :func:`expand_catalog` grows ML-100K
(seeded): each new title splices words of two real titles (plus a sequel-style suffix
sometimes), takes genres from its parents, draws year, rating, runtime, platforms and
maturity, and gets a popularity from a Pareto draw; its embedding is the normalised mix of its
parents' real MiniLM vectors plus noise, so neighbourhoods look like real catalog ones.
Queries are encoded by the real MiniLM model.

Reported (:func:`run_search_bench`): build seconds per index, hybrid search p50/p99 with the
query embedding computed (cold) and cached (warm; the pipeline keeps query vectors for 1 h),
and autocomplete p50/p99 with its memo cleared before every call. The garbage collector's
view of the built indexes is frozen (``gc.freeze``) before timing, as a server does after
loading, so full collections over millions of index objects do not land inside queries.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona.search.documents import check_documents, describe
from sona.search.engine import SearchConfig, SearchEngine
from sona.search.filters import MATURITY_LEVELS, PLATFORMS
from sona.search.text_index import words

log = logging.getLogger(__name__)

_SUFFIXES = ("II", "III", "Returns", "Reloaded", "Origins", "Redux", "Forever", "Rising",
             "The Series", "Legacy")
_INTENT = ("90s sci-fi comedies", "horror movies from the 80s", "westerns before 1960",
           "romantic comedy from 1995", "animated family films", "crime thrillers on netflix",
           "feel good movies under 2 hours", "war dramas of the 1940s", "documentaries",
           "action adventure from the 2010s", "movies like Star Wars", "dark crime dramas")


@dataclass
class SearchBenchResult:
    """What ``sona bench search`` prints and saves."""

    n_documents: int
    build_s: dict[str, float]
    hybrid_cold_ms: dict[str, float]
    hybrid_warm_ms: dict[str, float]
    keyword_ms: dict[str, float]
    vector_ms: dict[str, float]
    autocomplete_ms: dict[str, float]
    n_queries: int
    n_prefixes: int
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def expand_catalog(documents: pd.DataFrame, vectors: NDArray[np.float32], n: int, *,
                   seed: int = 42) -> tuple[pd.DataFrame, NDArray[np.float32]]:
    """Grow ``documents`` (and their vectors) to ``n`` rows (see module docstring)."""
    base = check_documents(documents)
    n0 = len(base)
    if n <= n0:
        return base.head(n).copy(), vectors[:n].copy()
    rng = np.random.default_rng(seed)
    k = n - n0
    a, b = rng.integers(0, n0, size=k), rng.integers(0, n0, size=k)
    toks = [words(t) for t in base["title"]]
    titles, genres, overviews = [], [], []
    years = rng.integers(1920, 2026, size=k).astype(np.float64)
    for i in range(k):
        left, right = toks[a[i]], toks[b[i]]
        head = left[: max(1, (len(left) + 1) // 2)]
        tail = right[len(right) // 2:] if len(right) > 1 else right
        title = " ".join(w.capitalize() for w in head + tail)
        if rng.random() < 0.3:
            title += " " + _SUFFIXES[int(rng.integers(len(_SUFFIXES)))]
        titles.append(title)
        gs = list(base["genres"].iat[a[i]])
        extra = list(base["genres"].iat[b[i]])
        if extra and rng.random() < 0.5:
            gs.append(extra[int(rng.integers(len(extra)))])
        genres.append(sorted(set(gs)))
        overviews.append(describe(years[i], genres[-1], []))
    platform_count = rng.integers(0, 4, size=k)
    platforms = [sorted(rng.choice(PLATFORMS[:9], size=c, replace=False).tolist())
                 for c in platform_count]
    maturity = rng.choice(list(MATURITY_LEVELS), size=k)
    pop = rng.pareto(1.5, size=k)
    extra = pd.DataFrame({
        "item_id": np.arange(n0, n0 + k) + 10_000_000, "title": titles,
        "alternate_titles": [[] for _ in range(k)], "overview": overviews,
        "people": [[] for _ in range(k)], "genres": genres, "platforms": platforms,
        "year": years, "runtime": np.clip(rng.normal(105, 20, size=k), 60, 240).round(),
        "maturity": maturity, "rating": np.clip(rng.normal(6.5, 1.2, size=k), 0, 10),
        "popularity": np.clip(pop / np.percentile(pop, 99.9), 0, 1),
        "quality": rng.uniform(0.3, 1.0, size=k),
    })
    noise = rng.standard_normal((k, vectors.shape[1])).astype(np.float32)
    mixed = 0.6 * vectors[a] + 0.4 * vectors[b] + 0.15 * noise / np.sqrt(vectors.shape[1])
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    docs = check_documents(pd.concat([base, extra], ignore_index=True))
    return docs, np.vstack([vectors, mixed]).astype(np.float32)


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64)
    return {"p50": round(float(np.percentile(arr, 50)), 3),
            "p99": round(float(np.percentile(arr, 99)), 3),
            "mean": round(float(arr.mean()), 3)}


def _queries(docs: pd.DataFrame, n: int, rng: np.random.Generator) -> list[str]:
    out = list(_INTENT)
    while len(out) < n:
        toks = words(docs["title"].iat[int(rng.integers(len(docs)))])
        if not toks:
            continue
        if rng.random() < 0.5 and len(toks) > 1:
            toks = toks[: max(1, len(toks) // 2 + 1)]
        long = [i for i, t in enumerate(toks) if len(t) >= 5]
        if long and rng.random() < 0.4:
            i = long[int(rng.integers(len(long)))]
            j = int(rng.integers(1, len(toks[i]) - 1))
            toks[i] = toks[i][:j] + toks[i][j + 1:]
        out.append(" ".join(toks))
    return out[:n]


def _prefixes(docs: pd.DataFrame, n: int, rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        title = " ".join(words(docs["title"].iat[int(rng.integers(len(docs)))]))
        if not title:
            continue
        cut = int(rng.integers(1, min(len(title), 12) + 1))
        prefix = title[:cut]
        if cut >= 4 and rng.random() < 0.2:  # a typo in the middle
            j = int(rng.integers(1, cut - 1))
            prefix = prefix[:j] + prefix[j + 1:]
        out.append(prefix)
    return out


def run_search_bench(documents: pd.DataFrame, vectors: NDArray[np.float32],
                     config: SearchConfig, *, n_queries: int = 300, n_prefixes: int = 2000,
                     seed: int = 42, encoder: Any = None) -> SearchBenchResult:
    """Build an engine over ``documents``/``vectors`` and time its queries."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    engine = SearchEngine(config, encoder).build(documents, vectors=vectors)
    total = time.perf_counter() - t0
    # a server loads its indexes once and then serves: move those long-lived objects out of
    # the collector's reach, so a full collection never pauses a query for tens of ms
    gc.collect()
    gc.freeze()
    build = {k.removesuffix("_s"): round(v, 3) for k, v in engine.build_timings_.items()}
    build["normalise_vectors"] = build.pop("encode")
    build["total"] = round(total, 3)
    queries = _queries(engine.documents_, n_queries, rng)
    engine.query_vector("warm up the encoder")
    engine.search("warm up")
    cold, warm, keyword, vector = [], [], [], []
    for q in queries:
        start = time.perf_counter()
        engine.search(q)
        cold.append((time.perf_counter() - start) * 1000)
    for q in queries:
        start = time.perf_counter()
        engine.search(q)
        warm.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        engine.search(q, mode="keyword")
        keyword.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        engine.search(q, mode="vector")
        vector.append((time.perf_counter() - start) * 1000)
    complete = []
    ac = engine.autocomplete_
    for p in _prefixes(engine.documents_, n_prefixes, rng):
        ac._cache.clear()  # time the lookup itself, not the memo
        start = time.perf_counter()
        ac.complete(p, 10)
        complete.append((time.perf_counter() - start) * 1000)
    return SearchBenchResult(
        n_documents=len(engine.documents_), build_s=build,
        hybrid_cold_ms=_percentiles(cold), hybrid_warm_ms=_percentiles(warm),
        keyword_ms=_percentiles(keyword), vector_ms=_percentiles(vector),
        autocomplete_ms=_percentiles(complete), n_queries=len(queries),
        n_prefixes=n_prefixes,
        config={"vector": asdict(config.vector), "fusion": config.fusion,
                "top_k": config.top_k})


__all__ = ["SearchBenchResult", "expand_catalog", "run_search_bench"]
