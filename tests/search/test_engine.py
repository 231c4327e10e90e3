from __future__ import annotations

import numpy as np
import pytest

from sona.errors import NotFittedError, UnknownIdError
from sona.search.engine import SearchEngine, load_engine, save_engine
from sona.search.filters import SearchFilters
from sona.search.fusion import RankingConfig


def titles(engine, result):
    return [engine.documents_["title"].iat[h.position] for h in result.hits]


def test_known_item_and_typo(small_engine):
    res = small_engine.search("star wars", page_size=3)
    assert res.hits[0].item_id == 1 and "keyword" in res.hits[0].match_reasons
    assert small_engine.search("galxy quest", page_size=1).hits[0].item_id == 6


def test_intent_filters_constrain_all_results(small_engine):
    res = small_engine.search("90s sci-fi comedies", page_size=10)
    assert sorted(res.ranked_ids) == [5, 6]
    assert res.parsed["filters"]["genre"] == ["comedy", "sci_fi"]
    assert res.facets["years"] == [{"value": "1990s", "count": 2}]
    assert all("genre: sci_fi" in h.match_reasons for h in res.hits)


def test_explicit_filters_win_and_unknown_values_raise(small_engine):
    res = small_engine.search("comedy", filters=SearchFilters(platforms=("hulu",)),
                              page_size=10)
    assert set(res.ranked_ids) <= {4, 5, 12} and 12 in res.ranked_ids
    with pytest.raises(ValueError, match="unknown genre"):
        small_engine.search("x", filters=SearchFilters(genres=("blah",)))


def test_only_ids_restrict_every_strategy(small_engine):
    # issue 11: an availability filter arrives as the ids watchable now (catalog string ids)
    only = frozenset({"5", "6", "12"})
    for mode in ("hybrid", "keyword", "vector"):
        res = small_engine.search("comedy", filters=SearchFilters(only_ids=only),
                                  page_size=10, mode=mode)
        assert set(res.ranked_ids) <= {5, 6, 12} and res.ranked_ids
    none = small_engine.search("comedy", filters=SearchFilters(only_ids=frozenset()))
    assert none.total_count == 0
    assert SearchFilters(only_ids=only).to_dict() == {"only_ids_count": 3}


def test_relaxation_when_intent_filters_match_nothing(small_engine):
    # no western exists: the intent filter is relaxed instead of returning nothing
    res = small_engine.search("westerns from the 70s")
    assert res.total_count > 0 and res.parsed["relaxed"] is True


def test_catalog_without_field_ignores_intent_filter(ml_engine):
    res = ml_engine.search("comedies on netflix", page_size=5)
    assert res.parsed["ignored_filters"] == ["platforms"]
    assert res.total_count > 0


def test_like_reference_is_resolved_and_excluded(small_engine):
    res = small_engine.search("movies like Star Wars", page_size=5)
    assert res.parsed["resolved_references"] == ["Star Wars"]
    assert 1 not in res.ranked_ids
    assert any(r.startswith("similar to Star Wars") for h in res.hits for r in h.match_reasons)


def test_modes_paging_and_validation(small_engine):
    full = small_engine.search("sci-fi", page_size=100)
    page2 = small_engine.search("sci-fi", page=2, page_size=2)
    assert [h.item_id for h in page2.hits] == full.ranked_ids[2:4]
    kw = small_engine.search("alien", mode="keyword")
    assert kw.hits[0].item_id == 4 and kw.hits[0].vector_similarity is None
    vec = small_engine.search("alien", mode="vector")
    assert all(h.keyword_score is None or h.keyword_score > 0 for h in vec.hits)
    for bad, match in (("", "empty"), ("x" * 513, "limit is 512")):
        with pytest.raises(ValueError, match=match):
            small_engine.search(bad)
    with pytest.raises(ValueError, match="page_size"):
        small_engine.search("x", page_size=101)
    with pytest.raises(ValueError, match="experiment_variant"):
        small_engine.search("x", user_vector=np.ones(8, np.float32), variant="nope")


def test_personalisation_moves_results_toward_user(small_engine):
    base = small_engine.search("film", page_size=12)
    target = base.ranked_ids[-1]  # the user loves the film ranked last
    taste = small_engine.vectors_[small_engine.item_position(target)]
    control = small_engine.search("film", page_size=12, user_vector=taste, variant="control")
    assert control.ranked_ids == base.ranked_ids
    res = small_engine.search("film", page_size=12, user_vector=taste,
                              variant="aggressive_boost")
    assert res.ranked_ids.index(target) < base.ranked_ids.index(target)
    assert res.parsed["personalization_boost"] == 0.6
    assert "personalized" in res.hits[0].match_reasons
    with pytest.raises(ValueError, match="dimension"):
        small_engine.search("film", user_vector=np.ones(3, np.float32))


def test_ranking_weights_change_order(small_engine):
    pop_only = small_engine.with_config(ranking=RankingConfig(
        vector=0.0, keyword=0.0, quality=0.0, freshness=0.0, popularity=1.0))
    res = pop_only.search("sci-fi", page_size=3)
    pops = [small_engine.documents_["popularity"].iat[h.position] for h in res.hits]
    assert pops == sorted(pops, reverse=True)
    with pytest.raises(ValueError, match="need a rebuild"):
        small_engine.with_config(vector=None)


def test_unknown_ids_and_unbuilt():
    with pytest.raises(NotFittedError):
        SearchEngine().search("x")


def test_item_position(small_engine):
    assert small_engine.item_position(3) == 2
    with pytest.raises(UnknownIdError):
        small_engine.item_position(999)


def test_minilm_semantic_search(ml_engine):
    res = ml_engine.search("space opera with jedi knights", page_size=5, mode="vector")
    assert {"Star Wars", "Return of the Jedi", "The Empire Strikes Back"} & set(
        titles(ml_engine, res))
    hybrid = ml_engine.search("empire strikes back", page_size=3)
    assert titles(ml_engine, hybrid)[0] == "The Empire Strikes Back"


def test_save_load_round_trip(ml_engine, tmp_path):
    save_engine(ml_engine, tmp_path / "engine")
    loaded = load_engine(tmp_path / "engine")
    for q in ("star wars", "90s comedies", "godfater"):
        assert loaded.search(q).ranked_ids == ml_engine.search(q).ranked_ids


def test_document_fields_are_the_frames_row_values(small_engine):
    # issue 12: results read the served columns from a memo instead of iloc per hit
    from sona.search.engine import SERVED_COLUMNS

    for pos in range(len(small_engine)):
        row = small_engine.documents_.iloc[pos]
        got = small_engine.document(pos)
        assert list(got) == list(SERVED_COLUMNS)
        for name in SERVED_COLUMNS:
            want = row[name]
            assert type(got[name]) is type(want)
            assert repr(got[name]) == repr(want)
        assert small_engine.document(pos) is got  # memoised
    view = small_engine.with_config(ranking=RankingConfig(vector=0.5, keyword=0.5, quality=0.0,
                                                          freshness=0.0))
    assert view.document(0) is small_engine.document(0)


def test_has_query_vector(small_engine):
    small_engine.query_vector("  Space Opera ")
    assert small_engine.has_query_vector("space opera")
    assert not small_engine.has_query_vector("never asked")
