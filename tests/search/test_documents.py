from __future__ import annotations

import pandas as pd
import pytest

from sona.errors import DataError
from sona.search.documents import (
    check_documents,
    describe,
    document_texts,
    documents_from_catalog,
    documents_from_items,
    split_movielens_title,
)


@pytest.mark.parametrize(("raw", "title", "alternates"), [
    ("Empire Strikes Back, The", "The Empire Strikes Back", ["Empire Strikes Back, The"]),
    ("City of Lost Children, The (Cité des enfants perdus, La)", "The City of Lost Children",
     ["La Cité des enfants perdus", "City of Lost Children, The (Cité des enfants perdus, La)"]),
    ("Babe (a.k.a. Pig)", "Babe", ["Pig", "Babe (a.k.a. Pig)"]),
    ("Toy Story", "Toy Story", []),
])
def test_split_movielens_title(raw, title, alternates):
    assert split_movielens_title(raw) == (title, alternates)


def test_describe():
    assert describe(1995.0, ["animation", "comedy"], ["won 3 awards"]) == \
        "An animation and comedy film from 1995, a 1990s film. Won 3 awards."
    assert describe(float("nan"), ["sci_fi"], []) == "A science fiction film."


def test_check_documents_errors():
    with pytest.raises(DataError, match="lack column"):
        check_documents(pd.DataFrame({"item_id": [1]}))
    with pytest.raises(DataError, match="duplicate item id"):
        check_documents(pd.DataFrame({"item_id": [1, 1], "title": ["a", "b"]}))
    with pytest.raises(DataError, match="non-canonical genre"):
        check_documents(pd.DataFrame({"item_id": [1], "title": ["a"], "genres": [["Sci-Fi"]]}))
    ok = check_documents(pd.DataFrame({"item_id": [1], "title": ["a"]}))
    assert ok["popularity"].iat[0] == 0.0 and ok["genres"].iat[0] == []


def test_documents_from_ml100k(ml100k):
    docs = documents_from_catalog(ml100k.catalog, ml100k.interactions, kg=ml100k.kg,
                                  links=ml100k.links)
    assert len(docs) == 1682
    toy = docs.iloc[0]
    assert toy["title"] == "Toy Story" and toy["genres"] == ["animation", "comedy", "family"]
    assert toy["popularity"] == pytest.approx(0.9601, abs=1e-3)  # 452 ratings, max 583
    assert 0.0 <= docs["quality"].min() and docs["quality"].max() <= 1.0
    assert docs.loc[docs["title"] == "Star Wars", "popularity"].iat[0] == 1.0
    assert document_texts(docs)[0].startswith("Toy Story (1995). Genres: animation, comedy")


def test_documents_from_items():
    items = [{"canonical_id": "a1", "title": "Heat", "original_title": "Heat (1995)",
              "overview": "Cops and robbers.", "genres": ["crime", "Action & Adventure"],
              "credits": {"directors": ["Michael Mann"], "cast": [{"name": "Al Pacino"}]},
              "availability": [{"platform": "netflix"}, {"platform": "hulu"}],
              "release_year": 1995, "runtime_minutes": 170, "maturity_rating": "R",
              "average_rating": 8.3, "popularity_score": 0.6, "data_quality_score": 0.9}]
    docs = documents_from_items(items)
    row = docs.iloc[0]
    assert row["genres"] == ["action", "adventure", "crime"]
    assert row["people"] == ["Michael Mann", "Al Pacino"]
    assert row["platforms"] == ["hulu", "netflix"] and row["maturity"] == "R"
    assert row["quality"] == 0.9 and row["alternate_titles"] == ["Heat (1995)"]
    with pytest.raises(DataError, match="no catalog items"):
        documents_from_items([])
