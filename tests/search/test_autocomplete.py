from __future__ import annotations

import pytest

from sona.search.autocomplete import Autocomplete, AutocompleteConfig, Suggestion


@pytest.fixture(scope="module")
def ac(small_docs) -> Autocomplete:
    return Autocomplete().build(Autocomplete.entries_from_documents(small_docs))


def texts(found):
    return [s.text for s in found]


def test_prefix_ranked_by_popularity(ac):
    found, cached = ac.complete("s", 4)
    assert not cached
    # Star Wars (1.0) > "sci fi" genre > Sleepless in Seattle (0.55) > Spaceballs (0.4)
    assert texts(found)[0] == "Star Wars"
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    again, cached = ac.complete("s", 4)
    assert cached and texts(again) == texts(found)


def test_word_starts_match_with_lower_weight(ac):
    found, _ = ac.complete("wars", 3)
    assert texts(found)[0] == "Star Wars"
    assert found[0].score == pytest.approx(0.8 * 1.0)


def test_typos_are_tolerated(ac):
    found, _ = ac.complete("empre str", 3)
    assert texts(found) == ["The Empire Strikes Back"]
    assert found[0].score == pytest.approx(0.9 * 0.8 * 0.5)  # popularity x word x typo
    found, _ = ac.complete("galxy", 3)
    assert texts(found) == ["Galaxy Quest"]
    assert ac.complete("qqqq", 3)[0] == []


def test_genres_platforms_people_and_queries(ac):
    kinds = {s.type for s in ac.complete("g", 10)[0]}
    assert "person" in kinds  # George Lucas
    assert ("netflix", "platform") in {(s.text, s.type) for s in ac.complete("netf", 5)[0]}
    ac2 = Autocomplete(AutocompleteConfig()).build(ac._entries)
    ac2.add_queries({"space comedy": 10, "spaceballs": 2})
    found, _ = ac2.complete("spac", 5)
    assert texts(found)[0] == "space comedy" and found[0].type == "keyword"


def test_duplicates_keep_more_popular():
    ac = Autocomplete().build([Suggestion("Heat", "title", 0.2, {"item_id": 1}),
                               Suggestion("heat", "title", 0.9, {"item_id": 2})])
    found, _ = ac.complete("he", 5)
    assert len(found) == 1 and found[0].metadata == {"item_id": 2}


def test_bad_limit(ac):
    with pytest.raises(ValueError, match="limit"):
        ac.complete("s", 0)
    assert ac.complete("   ", 5) == ([], False)
