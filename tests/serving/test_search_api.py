from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sona.embeddings import TfidfConfig, TfidfEncoder
from sona.search.analytics import SearchAnalytics
from sona.search.documents import check_documents
from sona.search.engine import SearchConfig, SearchEngine
from sona.search.faiss_index import FaissIndexConfig
from sona.serving.errors import ApiError
from sona.serving.search_api import (
    ClickRequest,
    RankingVariantModel,
    RankingWeights,
    SearchHandler,
    SearchRequest,
)

DOCS = [(1, "Star Wars", ["sci_fi", "action"], 1977, 1.0), (2, "Alien", ["sci_fi", "horror"],
        1979, 0.7), (3, "Toy Story", ["animation", "family"], 1995, 0.9),
        (4, "Galaxy Quest", ["sci_fi", "comedy"], 1999, 0.5), (5, "Heat", ["crime"], 1995, 0.6),
        (6, "Men in Black", ["sci_fi", "comedy"], 1997, 0.8)]


@pytest.fixture(scope="module")
def engine() -> SearchEngine:
    frame = pd.DataFrame(DOCS, columns=["item_id", "title", "genres", "year", "popularity"])
    frame["overview"] = [f"A {' and '.join(g)} film" for g in frame["genres"]]
    return SearchEngine(SearchConfig(vector=FaissIndexConfig(kind="flat")),
                        TfidfEncoder(TfidfConfig(n_components=4))).build(check_documents(frame))


@pytest.fixture()
def handler(engine, tmp_path) -> SearchHandler:
    users = {"u-horror": engine.vectors_[engine.item_position(2)], "u-empty": None}
    return SearchHandler(engine, SearchAnalytics(data_dir=tmp_path),
                         user_vectors=lambda uid: users[uid])


def error_of(call) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.status, info.value.error


def test_search_response_shape_and_analytics(handler):
    resp = handler.search(SearchRequest(query="90s sci-fi comedies", page_size=1))
    assert resp.total_count == 2 and resp.page_size == 1 and len(resp.results) == 1
    first = resp.results[0]
    assert first.content.id in {"4", "6"} and first.content.genres == ["comedy", "sci_fi"]
    assert resp.query_parsed["filters"]["year_range"] == {"min": 1990, "max": 1999}
    assert resp.facets["genres"][0] == {"value": "comedy", "count": 2}
    handler.click(ClickRequest(search_event_id=resp.search_event_id, content_id="4",
                               position=1))
    report = handler.analytics_report("1h")
    assert report["total_searches"] == 1 and report["click_through_rate"] == 1.0
    assert handler.search_keyword(SearchRequest(query="alien")).results[0].content.id == "2"
    assert handler.search_vector(SearchRequest(query="alien")).total_count > 0


def test_bad_requests_are_4xx(handler):
    # a blank or over-long query is refused by the request model, as the OpenAPI document
    # states it (a 400 validation_error naming `query`; schemathesis, issue 13)
    for query in ("  ", "\u3000", "x" * 600):
        with pytest.raises(ValidationError) as refused:
            SearchRequest(query=query)
        assert [e["loc"] for e in refused.value.errors()] == [("query",)]
    assert error_of(lambda: handler.search(SearchRequest(
        query="x", filters={"genres": ["blah"]}))) == (400, "invalid_filter")
    assert error_of(lambda: handler.search(SearchRequest(
        query="x", filters={"content_rating_limit": "XXX"}))) == (400, "invalid_filter")
    assert error_of(lambda: handler.search(SearchRequest(
        query="x", filters={"year_range": {"min": 2000, "max": 1990}}))) == \
        (400, "invalid_filter")
    assert error_of(lambda: handler.search(SearchRequest(
        query="x", experiment_variant="nope"))) == (404, "unknown_variant")
    assert error_of(lambda: handler.autocomplete("")) == (400, "empty_query")
    assert error_of(lambda: handler.autocomplete("st", 0)) == (400, "invalid_request")
    assert error_of(lambda: handler.click(ClickRequest(search_event_id=999, content_id="1",
                                                       position=1))) == (404, "not_found")
    assert error_of(lambda: handler.analytics_report("2y")) == (400, "invalid_request")


def test_personalisation_and_missing_profiles(handler):
    base = handler.search(SearchRequest(query="film"))
    mine = handler.search(SearchRequest(query="film", user_id="u-horror",
                                        experiment_variant="aggressive_boost"))
    ids = [r.content.id for r in mine.results]
    assert ids.index("2") <= [r.content.id for r in base.results].index("2")
    assert mine.query_parsed["personalization_boost"] == 0.6
    empty = handler.search(SearchRequest(query="film", user_id="u-empty"))
    assert empty.query_parsed["personalization"] == "no profile"


def test_autocomplete_and_ranking_admin(handler):
    resp = handler.autocomplete("gal", 5)
    assert resp.suggestions[0].text == "Galaxy Quest" and resp.cached is False
    assert handler.autocomplete("gal", 5).cached is True
    current = handler.get_ranking()
    assert current["version"] == 1
    put = handler.put_ranking(RankingWeights(vector=0.0, keyword=0.0, quality=0.0,
                                             freshness=0.0, popularity=1.0))
    assert put["version"] == 2 and handler.ranking_history(1)["version"] == 1
    ranked = handler.search(SearchRequest(query="sci-fi", page_size=4))
    pops = [r.content.popularity_score for r in ranked.results]
    assert pops == sorted(pops, reverse=True)
    assert error_of(lambda: handler.put_ranking(RankingWeights(
        vector=1.0, keyword=1.0, quality=0.0, freshness=0.0))) == (400, "invalid_weights")
    handler.put_variant("fresh", RankingVariantModel(weights=RankingWeights(
        vector=0.0, keyword=0.0, quality=0.0, freshness=1.0)))
    fresh = handler.search(SearchRequest(query="sci-fi", experiment_variant="fresh"))
    years = [r.content.release_year for r in fresh.results]
    assert years == sorted(years, reverse=True)
    assert [v["name"] for v in handler.ranking_variants()] == ["fresh"]
    assert handler.delete_variant("fresh") == {"deleted": "fresh"}
    assert error_of(lambda: handler.get_variant("fresh")) == (404, "not_found")
    assert error_of(lambda: handler.ranking_history(42)) == (404, "not_found")
    assert handler.health() == {"status": "ok", "documents": 6}
    assert np.isfinite(ranked.search_time_ms)


def test_runs_inline_only_for_cached_queries_without_profile_or_pending_update(handler):
    """What the service answers on its event loop: a cached query vector (or keyword mode),
    no user profile to read, no index update holding or awaiting the write lock."""
    new = SearchRequest(query="an inline probe query")
    assert not handler.runs_inline(new)  # the encoder has to run: a worker thread
    assert handler.runs_inline(new, "keyword")  # no encoder in keyword mode
    handler.search(new)  # caches the query vector
    assert handler.runs_inline(new) and handler.runs_inline(new, "vector")
    assert handler.runs_inline(SearchRequest(query="  AN INLINE probe query "))  # cache key
    assert not handler.runs_inline(SearchRequest(query=new.query, user_id="u-horror"))
    with handler.engine.live_.lock.write():  # an update in progress: never block the loop
        assert not handler.runs_inline(new)
    assert handler.runs_inline(new)
