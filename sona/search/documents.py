"""Search documents: the flat per-item table every search component reads.

A search document frame has one row per catalog item and these columns (the schema is
checked by :func:`check_documents`):

==================  ===============================================================
``item_id``         external id (int or str), unique
``title``           display title
``alternate_titles`` list[str]: original/foreign/alternate titles
``overview``        free text (ML-100K has none: built from genres, year and KG facts)
``people``          list[str]: directors, writers, cast
``genres``          list[str]: canonical genres (:mod:`sona.genres`)
``platforms``       list[str]: platforms offering the item
``year``            release year (float, NaN when unknown)
``runtime``         minutes (float, NaN when unknown)
``maturity``        maturity rating (str, "" when unknown)
``rating``          average rating on the 0-10 scale (NaN when unknown)
``popularity``      0-1
``quality``         0-1 (data-quality score, or a rating-based proxy)
==================  ===============================================================

:func:`documents_from_catalog` builds them from a MovieLens-style
:class:`~sona.data.interactions.Catalog`; :func:`documents_from_items` from ingested
``ContentItem`` records (:mod:`sona.catalog`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from sona.data.interactions import Catalog, Interactions
from sona.embeddings import kg_facts
from sona.errors import DataError
from sona.genres import GENRE_SET, check_genres, map_genres, movielens_genres

DOCUMENT_COLUMNS: tuple[str, ...] = (
    "item_id", "title", "alternate_titles", "overview", "people", "genres", "platforms",
    "year", "runtime", "maturity", "rating", "popularity", "quality",
)
LIST_COLUMNS = ("alternate_titles", "people", "genres", "platforms")
FLOAT_COLUMNS = ("year", "runtime", "rating", "popularity", "quality")

_ARTICLE = re.compile(r"^(?P<body>.+), (?P<article>The|A|An|Les|Le|La|L'|Il|Das|Der|Die|El)$")
_PAREN = re.compile(r"\s*\(([^()]*)\)\s*$")


def split_movielens_title(raw: str) -> tuple[str, list[str]]:
    """``"City of Lost Children, The (Cité des enfants perdus, La)"`` -> display + alternates.

    MovieLens moves leading articles to the end and appends foreign titles in parentheses;
    users type "the city of lost children", so the display title restores the article and
    every other spelling (the raw title, the foreign one) becomes an alternate title.
    """
    text = raw.strip()
    alternates: list[str] = []
    match = _PAREN.search(text)
    if match and match.start() > 0:
        inner = match.group(1).strip()
        if inner and not inner.lower().startswith(("a.k.a", "aka")):
            alternates.append(_front_article(inner))
        elif inner:
            alternates.append(_front_article(inner.split(" ", 1)[-1]))
        text = text[: match.start()].strip()
    title = _front_article(text)
    if raw.strip() not in (title, *alternates):
        alternates.append(raw.strip())
    return title, alternates


def _front_article(text: str) -> str:
    m = _ARTICLE.match(text)
    if not m:
        return text
    article = m.group("article")
    sep = "" if article.endswith("'") else " "
    return f"{article}{sep}{m.group('body')}"


def describe(year: float, genres: list[str], facts: list[str]) -> str:
    """An overview sentence for items that lack one (ML-100K): genres, year and KG facts."""
    words = [g.replace("_", " ").replace("sci fi", "science fiction") for g in genres]
    if len(words) > 1:
        kind = ", ".join(words[:-1]) + " and " + words[-1]
    else:
        kind = words[0] if words else "feature"
    when = f" from {int(year)}" if not np.isnan(year) else ""
    decade = f", a {int(year) // 10 * 10}s film" if not np.isnan(year) else ""
    article = "An" if kind[0] in "aeiou" else "A"
    text = f"{article} {kind} film{when}{decade}."
    if facts:
        joined = "; ".join(facts)
        text += " " + joined[0].upper() + joined[1:] + "."
    return text


def check_documents(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise a document frame (column types, canonical genres, unique ids).

    Raises:
        DataError: missing column, duplicate/missing id, or a non-canonical genre.
    """
    missing = [c for c in ("item_id", "title") if c not in frame.columns]
    if missing:
        raise DataError(f"search documents lack column(s) {missing}", column=missing[0])
    out = frame.reset_index(drop=True).copy()
    if out["item_id"].isna().any():
        raise DataError("missing item id", column="item_id",
                        row=int(np.flatnonzero(out["item_id"].isna())[0]))
    dup = out["item_id"].duplicated()
    if dup.any():
        raise DataError("duplicate item id", column="item_id", row=int(np.flatnonzero(dup)[0]))
    out["title"] = out["title"].fillna("").astype(str)
    out["overview"] = out["overview"].fillna("").astype(str) if "overview" in out else ""
    for col in LIST_COLUMNS:
        values = out[col] if col in out else pd.Series([()] * len(out))
        out[col] = [list(v) if isinstance(v, list | tuple | np.ndarray) else
                    ([] if v is None or (isinstance(v, float) and np.isnan(v)) else [str(v)])
                    for v in values]
    for row, genres in enumerate(out["genres"]):
        bad = [g for g in genres if g not in GENRE_SET]
        if bad:
            raise DataError(f"non-canonical genre(s) {bad}", column="genres", row=row)
    out["genres"] = [check_genres(g) for g in out["genres"]]  # canonical order
    for col in FLOAT_COLUMNS:
        default = 0.0 if col in ("popularity", "quality") else np.nan
        out[col] = (pd.to_numeric(out[col], errors="coerce").astype(np.float64)
                    if col in out else default)
        if col in ("popularity", "quality"):
            out[col] = out[col].fillna(0.0).clip(0.0, 1.0)
    out["maturity"] = out["maturity"].fillna("").astype(str) if "maturity" in out else ""
    return out[list(DOCUMENT_COLUMNS)]


def documents_from_catalog(
    catalog: Catalog,
    interactions: Interactions | None = None,
    *,
    kg: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    prior_weight: float = 20.0,
) -> pd.DataFrame:
    """Search documents from a MovieLens-style catalog (+ ratings for popularity/quality).

    ``popularity`` = log(1 + n_ratings) / log(1 + max n_ratings); ``rating`` = mean rating x 2
    (0-10 scale); ``quality`` = Bayesian-average rating (``prior_weight`` pseudo-ratings at
    the global mean) rescaled from 1-5 to 0-1, a quality proxy where no data-quality score
    exists. Genres are mapped to the canonical vocabulary; the overview is :func:`describe`.
    """
    frame = catalog.frame
    facts = kg_facts(catalog, kg, links) if kg is not None and links is not None else {}
    titles, alternates, overviews, genres = [], [], [], []
    for row in frame.itertuples(index=False):
        title, alts = split_movielens_title(row.title)
        canon = movielens_genres(row.genres)
        year = float(row.year) if not pd.isna(row.year) else np.nan
        titles.append(title)
        alternates.append(alts)
        genres.append(canon)
        overviews.append(describe(year, canon, facts.get(row.item_id, [])))
    docs = pd.DataFrame({
        "item_id": frame["item_id"].to_numpy(), "title": titles, "alternate_titles": alternates,
        "overview": overviews, "genres": genres,
        "year": pd.to_numeric(frame["year"], errors="coerce").astype(np.float64).to_numpy(),
    })
    if interactions is not None:
        inter = interactions.frame
        stats = inter.groupby("item_id")["rating"].agg(["count", "sum", "mean"])
        stats = stats.reindex(docs["item_id"])
        count = stats["count"].fillna(0.0).to_numpy(np.float64)
        total = stats["sum"].fillna(0.0).to_numpy(np.float64)
        glob = float(inter["rating"].mean()) if inter["rating"].notna().any() else 3.0
        docs["popularity"] = np.log1p(count) / max(np.log1p(count.max()), 1e-12)
        docs["rating"] = stats["mean"].to_numpy(np.float64) * 2.0
        bayes = (prior_weight * glob + total) / (prior_weight + count)
        docs["quality"] = np.clip((bayes - 1.0) / 4.0, 0.0, 1.0)
    return check_documents(docs)


def _field(item: Any, name: str, default: Any = None) -> Any:
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)


def documents_from_items(items: Iterable[Any]) -> pd.DataFrame:
    """Search documents from canonical ``ContentItem`` records (objects or dicts).

    People are directors, writers and cast; platforms come from the availability offers;
    ``rating`` is ``average_rating`` (0-10); quality is ``data_quality_score``.
    """
    rows = []
    for item in items:
        credits = _field(item, "credits") or {}
        cast = _field(credits, "cast", []) or []
        people = [*(_field(credits, "directors", []) or []),
                  *(_field(credits, "writers", []) or []),
                  *[_field(c, "name", "") for c in cast]]
        alternates = dict(_field(item, "alternate_titles", {}) or {})
        original = _field(item, "original_title")
        alt_titles = ([original] if original else []) + list(alternates.values())
        offers = _field(item, "availability", []) or []
        platforms = sorted({str(_field(o, "platform")) for o in offers})
        rows.append({
            "item_id": str(_field(item, "canonical_id")),
            "title": _field(item, "title", ""),
            "alternate_titles": alt_titles,
            "overview": _field(item, "overview") or "",
            "people": [p for p in people if p],
            "genres": map_genres(_field(item, "genres", []) or []),
            "platforms": platforms,
            "year": _field(item, "release_year"),
            "runtime": _field(item, "runtime_minutes"),
            "maturity": _field(item, "maturity_rating") or "",
            "rating": _field(item, "average_rating"),
            "popularity": _field(item, "popularity_score", 0.0),
            "quality": _field(item, "data_quality_score", 0.0),
        })
    if not rows:
        raise DataError("no catalog items to index")
    return check_documents(pd.DataFrame(rows))


def document_texts(documents: pd.DataFrame) -> list[str]:
    """The text embedded for each document: title, alternates, genres, year, overview."""
    texts = []
    for row in documents.itertuples(index=False):
        head = row.title + (f" ({int(row.year)})" if not np.isnan(row.year) else "")
        parts = [head + "."]
        if row.alternate_titles:
            parts.append("Also known as " + "; ".join(row.alternate_titles) + ".")
        if row.genres:
            parts.append("Genres: " + ", ".join(g.replace("_", " ") for g in row.genres) + ".")
        if row.overview:
            parts.append(row.overview)
        if row.people:
            parts.append("With " + ", ".join(row.people[:5]) + ".")
        texts.append(" ".join(parts))
    return texts


__all__ = [
    "DOCUMENT_COLUMNS", "check_documents", "describe", "document_texts",
    "documents_from_catalog", "documents_from_items", "split_movielens_title",
]
