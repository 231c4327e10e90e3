"""Fixtures of the search tests: a hand-made catalog and ML-100K engines (real encoders)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sona.embeddings import EncoderConfig, TextEncoder, TfidfConfig, TfidfEncoder
from sona.search.documents import check_documents, documents_from_catalog
from sona.search.engine import SearchConfig, SearchEngine
from sona.search.faiss_index import FaissIndexConfig


@pytest.fixture(scope="session")
def small_docs() -> pd.DataFrame:
    """Twelve documents with every field used by filters, facets and boosts."""
    rows = [
        (1, "Star Wars", ["sci_fi", "action", "adventure"], 1977, 9.0, 1.0, ["netflix"], 121, "PG"),
        (2, "The Empire Strikes Back", ["sci_fi", "action"], 1980, 8.8, 0.9, ["netflix"], 124,
         "PG"),
        (3, "Toy Story", ["animation", "family", "comedy"], 1995, 8.3, 0.95, ["disney_plus"], 81,
         "G"),
        (4, "Alien", ["sci_fi", "horror"], 1979, 8.5, 0.7, ["hulu"], 117, "R"),
        (5, "Men in Black", ["sci_fi", "comedy", "action"], 1997, 7.3, 0.8, ["netflix", "hulu"],
         98, "PG13"),
        (6, "Galaxy Quest", ["sci_fi", "comedy"], 1999, 7.4, 0.5, ["prime_video"], 102, "PG"),
        (7, "The Shining", ["horror"], 1980, 8.4, 0.75, ["hbo_max"], 146, "R"),
        (8, "Fargo", ["crime", "drama", "thriller"], 1996, 8.1, 0.85, [], 98, "R"),
        (9, "Heat", ["crime", "action", "thriller"], 1995, 8.3, 0.6, ["prime_video"], 170, "R"),
        (10, "Sleepless in Seattle", ["comedy", "romance"], 1993, 6.8, 0.55, ["netflix"], 105,
         "PG"),
        (11, "Casablanca", ["drama", "romance", "war"], 1942, 8.5, 0.65, [], 102, "PG"),
        (12, "Spaceballs", ["sci_fi", "comedy"], 1987, 7.1, 0.4, ["hulu"], 96, "PG"),
    ]
    frame = pd.DataFrame(rows, columns=["item_id", "title", "genres", "year", "rating",
                                        "popularity", "platforms", "runtime", "maturity"])
    frame["overview"] = [f"A {', '.join(g)} film." for g in frame["genres"]]
    frame["quality"] = frame["rating"] / 10
    frame["people"] = [["George Lucas"] if i in (1, 2) else [] for i in frame["item_id"]]
    frame["alternate_titles"] = [["Star Wars: A New Hope"] if i == 1 else []
                                 for i in frame["item_id"]]
    return check_documents(frame)


@pytest.fixture(scope="session")
def small_engine(small_docs) -> SearchEngine:
    """Engine over the small catalog with a real TF-IDF/LSA encoder (fast, no model load)."""
    config = SearchConfig(vector=FaissIndexConfig(kind="flat"))
    return SearchEngine(config, TfidfEncoder(TfidfConfig(n_components=8))).build(small_docs)


@pytest.fixture(scope="session")
def ml_docs(ml100k) -> pd.DataFrame:
    """The 200 most rated ML-100K items as search documents."""
    docs = documents_from_catalog(ml100k.catalog, ml100k.interactions, kg=ml100k.kg,
                                  links=ml100k.links)
    return docs.sort_values("popularity", ascending=False, kind="stable").head(200) \
        .reset_index(drop=True)


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> TextEncoder:
    """The real MiniLM encoder with a session-local cache."""
    cache = tmp_path_factory.mktemp("search-emb")
    return TextEncoder(EncoderConfig(cache_dir=str(cache), show_progress=False))


@pytest.fixture(scope="session")
def ml_engine(ml_docs, minilm) -> SearchEngine:
    """Hybrid engine over 200 ML-100K items with MiniLM embeddings (encoded once)."""
    config = SearchConfig(vector=FaissIndexConfig(kind="flat"), encoder=minilm.config)
    engine = SearchEngine(config, minilm).build(ml_docs)
    assert np.isfinite(engine.vectors_).all()
    return engine
