from __future__ import annotations

import pytest

from sona.search.intent import parse_query, without_references


@pytest.mark.parametrize(("query", "expected"), [
    ("90s sci-fi comedies", {"genres": ("comedy", "sci_fi"), "genre_mode": "all",
                             "year_min": 1990, "year_max": 1999}),
    ("horror movies from the 80s on Netflix", {"genres": ("horror",), "platforms": ("netflix",),
                                               "year_min": 1980, "year_max": 1989}),
    ("thrillers between 1990 and 1995", {"genres": ("thriller",), "year_min": 1990,
                                         "year_max": 1995}),
    ("war movies before 1960", {"genres": ("war",), "year_max": 1959}),
    ("documentaries on disney+", {"genres": ("documentary",), "platforms": ("disney_plus",)}),
    ("action films rated PG-13", {"genres": ("action",), "max_maturity": "PG13"}),
    ("family films under 2 hours", {"genres": ("family",), "runtime_max": 120.0}),
    ("dramas longer than 150 minutes", {"genres": ("drama",), "runtime_min": 150.0}),
    ("comedies of the nineties", {"genres": ("comedy",), "year_min": 1990, "year_max": 1999}),
    ("films from 1977", {"year_min": 1977, "year_max": 1977}),
    ("movies for kids", {"max_maturity": "PG"}),
])
def test_filters_extracted(query, expected):
    parsed = parse_query(query)
    for key, value in expected.items():
        assert getattr(parsed.filters, key) == value, key
    assert parsed.text == ""
    assert parsed.confidence == 0.5


def test_titles_with_genre_or_year_words_stay_text():
    p = parse_query("star wars")  # "wars" is a weak genre word: a preference, not a filter
    assert p.filters.is_empty() and p.text == "star wars" and p.soft_genres == ("war",)
    p = parse_query("2001 a space odyssey")
    assert p.filters.year_min is None and p.text == "2001 space odyssey"
    assert parse_query("prime suspect").filters.platforms == ()  # "prime" needs "on"
    assert parse_query("on prime").filters.platforms == ("prime_video",)


def test_moods_and_references():
    p = parse_query("feel-good movies like Toy Story on hulu")
    assert p.moods == ("happy",) and "comedy" in p.soft_genres
    assert p.references == ("Toy Story",) and p.filters.platforms == ("hulu",)
    assert p.intent == "recommendation"
    assert parse_query("who directed jaws").intent == "trivia"
    assert parse_query("something similar to Alien").references == ("Alien",)


def test_unresolved_references_return_to_text():
    p = parse_query("movies like Zorblax Returns")
    back = without_references(p, ["Zorblax Returns"])
    assert back.references == () and back.text == "zorblax returns"


def test_plain_query_has_no_intent():
    p = parse_query("die hard")
    assert not p.has_intent and p.confidence == 0.0 and p.text == "die hard"
    d = p.to_dict()
    assert d["filters"] == {"genre": [], "platform": []} and d["fallback_query"] == "die hard"
