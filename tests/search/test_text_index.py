from __future__ import annotations

import numpy as np
import pytest

from sona.errors import NotFittedError
from sona.search.filters import DocumentArrays, SearchFilters
from sona.search.text_index import TextIndex, TextIndexConfig, fold, words


@pytest.fixture(scope="module")
def index(small_docs) -> TextIndex:
    return TextIndex().build(small_docs)


def ids(small_docs, positions):
    return [int(small_docs["item_id"].iat[p]) for p in positions]


def test_words_fold_accents_and_punctuation():
    assert fold("Cité") == "cite"
    assert words("Sci-Fi: The Café!") == ["sci", "fi", "the", "cafe"]


def test_exact_title_ranks_first_with_phrase_bonus(index, small_docs):
    pos, scores = index.search("star wars", 5)
    assert ids(small_docs, pos)[0] == 1
    assert np.all(np.diff(scores) <= 0)


def test_title_outweighs_overview(small_docs):
    # "horror" is both a title-free genre word and in overviews; a title match must win
    idx = TextIndex(TextIndexConfig(title_boost=5.0)).build(small_docs)
    pos, _ = idx.search("shining", 3)
    assert ids(small_docs, pos) == [7]


def test_typo_is_corrected_to_indexed_words(index, small_docs):
    assert index.corrections("empre") == ["empire"]
    assert index.corrections("empire") == []  # indexed words are left alone
    assert index.corrections("sw") == []  # too short to correct
    query, searched = index.rewrite("the empre strikes")
    assert "(empire)^0.6" in query and searched == ["empire", "strikes"]
    pos, _ = index.search("empre strikes bak", 3)
    assert ids(small_docs, pos)[0] == 2


def test_fuzzy_off_finds_nothing_for_typos(small_docs):
    idx = TextIndex(TextIndexConfig(fuzzy=False)).build(small_docs)
    pos, _ = idx.search("galxy quets", 3)
    assert len(pos) == 0


def test_alternate_titles_and_people_are_searchable(index, small_docs):
    assert ids(small_docs, index.search("new hope", 3)[0])[0] == 1
    assert set(ids(small_docs, index.search("george lucas", 5)[0])) == {1, 2}


def test_query_syntax_is_never_parsed(index):
    pos, _ = index.search('title:"(star AND OR NOT)^9', 5)
    assert len(pos) >= 1  # words only; no syntax error
    assert index.search("!!!", 5)[0].size == 0


@pytest.mark.parametrize("filters", [
    SearchFilters(genres=("sci_fi", "comedy"), genre_mode="all"),
    SearchFilters(genres=("horror", "romance")),
    SearchFilters(platforms=("hulu",), year_min=1980),
    SearchFilters(rating_min=8.0, rating_max=8.5, runtime_max=120.0),
    SearchFilters(max_maturity="PG"),
])
def test_tantivy_filters_match_numpy_mask(index, small_docs, filters):
    mask = DocumentArrays.from_documents(small_docs).mask(filters)
    assert index.count(filters) == int(mask.sum())
    pos, _ = index.search("film", 20, filters=filters)
    assert set(pos.tolist()) <= set(np.flatnonzero(mask).tolist())


def test_excluded_positions_are_dropped(index):
    pos, _ = index.search("star wars", 5, excluded=np.array([0]))
    assert 0 not in pos.tolist()


def test_unbuilt_index_raises():
    with pytest.raises(NotFittedError):
        TextIndex().search("x", 1)
