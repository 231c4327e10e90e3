"""The requests ``sona bench load`` sends to each SONA endpoint (:class:`~sona.bench.load.Case`).

Chosen so that the server's caches see a realistic mix rather than one hot key:

- recommendations and score rotate over every user the bundle was trained on (shuffled,
  seeded) with one request in ``1/miss_share`` for a user id never seen before: that user's
  state is not cached, so the request pays the profile lookup (SQL) and the cold-start
  list. After the warm-up every known user's state is cached, so the state cache hit rate
  is ``1 - miss_share`` (10% misses by default);
- similar rotates over every item;
- search "warm" rotates over ``n_warm_queries`` catalogue titles the warm-up has sent (the
  query embedding is cached), search "cold" sends a never-seen query every time (a title
  plus a fresh token: the encoder runs on every request);
- autocomplete rotates over title prefixes of 2 to 5 characters.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.bench.ceiling import PING_PATH
from sona.bench.load import UNIQUE, Case

#: every endpoint ``sona bench load`` knows, in table order
ENDPOINTS: tuple[str, ...] = ("ping", "livez", "recommendations", "score", "similar",
                              "search_warm", "search_cold", "autocomplete")


def _interleave(known: list[str], fresh: str, miss_share: float) -> list[str]:
    if miss_share <= 0:
        return known
    every = max(int(round(1.0 / miss_share)), 1)
    out: list[str] = []
    for i, body in enumerate(known, start=1):
        out.append(body)
        if i % (every - 1 if every > 1 else 1) == 0:
            out.append(fresh)
    return out


def ping_case() -> Case:
    """The trivial ``POST /api/v1/ping`` (the service's and the Starlette ceiling's)."""
    return Case("ping", PING_PATH, bodies=["{}"], note="trivial async endpoint")


def serving_cases(users: Sequence[object] | NDArray[Any], items: Sequence[object] | NDArray[Any],
                  titles: Sequence[str], *,
                  limit: int = 20, miss_share: float = 0.1, n_warm_queries: int = 50,
                  seed: int = 0, endpoints: Sequence[str] = ENDPOINTS) -> list[Case]:
    """The load cases of ``endpoints`` over the bundle's ids and the catalogue's titles.

    Args:
        users: user ids the served pipeline was trained on.
        items: servable item ids.
        titles: catalogue titles (search and autocomplete).
        limit: recommendations list length (the API's default, 20).
        miss_share: share of recommendation/score requests for never-seen users.
        n_warm_queries: distinct queries of the warm-cache search case.
        seed: shuffling seed.
        endpoints: which of :data:`ENDPOINTS` to build.

    Raises:
        ValueError: an unknown endpoint name.
    """
    unknown = sorted(set(endpoints) - set(ENDPOINTS))
    if unknown:
        raise ValueError(f"unknown endpoint(s) {unknown}; known: {', '.join(ENDPOINTS)}")
    rng = np.random.default_rng(seed)
    user_ids = [str(u) for u in np.asarray(users, dtype=object)[rng.permutation(len(users))]]
    item_ids = [str(i) for i in np.asarray(items, dtype=object)[rng.permutation(len(items))]]
    paired = [item_ids[i % len(item_ids)] for i in range(len(user_ids))]
    clean = sorted({t.split(" (")[0].strip().lower() for t in titles if t.strip()})
    queries = [clean[i] for i in rng.permutation(len(clean))]
    pct = f"{1 - miss_share:.0%}" if miss_share > 0 else "100%"
    dump = json.dumps
    cases: dict[str, Callable[[], Case]] = {
        "ping": ping_case,
        "livez": lambda: Case("bentoml /livez", "/livez", method="GET", paths=["/livez"],
                      note="BentoML's own liveness probe"),
        "recommendations": lambda: Case(
            "recommendations", "/api/v1/recommendations",
            bodies=_interleave([dump({"user_id": u, "limit": limit}) for u in user_ids],
                               dump({"user_id": f"new-{UNIQUE}", "limit": limit}), miss_share),
            note=f"{len(user_ids)} known users rotated, state cache hit rate {pct} "
                 f"(misses: never-seen user ids)"),
        "score": lambda: Case(
            "personalization/score", "/api/v1/personalization/score",
            bodies=_interleave([dump({"user_id": u, "content_id": c})
                                for u, c in zip(user_ids, paired, strict=True)],
                               dump({"user_id": f"new-{UNIQUE}", "content_id": item_ids[0]}),
                               miss_share),
            note=f"known users rotated, state cache hit rate {pct}"),
        "similar": lambda: Case("recommendations/similar", "/api/v1/recommendations/similar",
                        bodies=[dump({"content_id": c, "limit": 10}) for c in item_ids],
                        note=f"{len(item_ids)} items rotated"),
        "search_warm": lambda: Case("search (warm cache)", "/api/v1/search",
                            bodies=[dump({"query": q}) for q in queries[:n_warm_queries]],
                            note=f"{min(n_warm_queries, len(queries))} title queries rotated, "
                                 f"all cached by the warm-up"),
        "search_cold": lambda: Case("search (cold cache)", "/api/v1/search",
                            bodies=[dump({"query": f"{q} {UNIQUE}"}) for q in queries],
                            note="every query new: a title plus a fresh token"),
        "autocomplete": lambda: Case(
            "search/autocomplete", "/api/v1/search/autocomplete", method="GET",
            paths=[f"/api/v1/search/autocomplete?q={urllib.parse.quote(p)}&limit=10"
                   for p in sorted({q[:n] for q in queries for n in (2, 3, 5) if len(q) >= n})],
            note="title prefixes of 2, 3 and 5 characters rotated"),
    }
    return [cases[e]() for e in endpoints]


__all__ = ["ENDPOINTS", "ping_case", "serving_cases"]
