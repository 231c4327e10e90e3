from __future__ import annotations

import pytest

from sona.genres import (
    GENRES,
    MOVIELENS_GENRES,
    check_genres,
    map_genre,
    map_genres,
    movielens_genres,
    normalize_label,
)


def test_vocabulary_has_the_24_spec_values():
    assert len(GENRES) == 24 == len(set(GENRES))
    assert "sci_fi" in GENRES and "science_fiction" not in GENRES


@pytest.mark.parametrize(("label", "expected"), [
    ("Action & Adventure", ("action", "adventure")),
    ("Sci-Fi", ("sci_fi",)), ("science_fiction", ("sci_fi",)), ("scifi", ("sci_fi",)),
    ("Kids", ("family",)), ("Family", ("family",)), ("Music", ("musical",)),
    ("Anime", ("animation",)), ("WWE", ("sport",)), ("Premier League", ("sport",)),
    ("True Crime", ("crime", "documentary")), ("Nickelodeon", ("family", "animation")),
    ("Star Trek", ("sci_fi",)), ("Masterclass", ("documentary",)), ("Nature", ("documentary",)),
    ("Netflix Originals", ("drama",)), ("Apple Original", ("drama",)),
    ("Game Show", ("game_show",)), ("reality tv", ("reality_tv",)), ("Westerns", ("western",)),
    ("Comédie", ()), ("unknown", ()),
])
def test_spec_labels_map(label, expected):
    assert map_genre(label) == expected


def test_normalize_and_many_labels():
    assert normalize_label("  Action &  Adventure ") == "action and adventure"
    assert normalize_label("Télé-Réalité") == "tele realite"
    labels = ["Thriller", "Sci-Fi", "sci fi", "Horror"]
    assert map_genres(labels) == ["horror", "sci_fi", "thriller"]


def test_every_movielens_label_is_canonical():
    for out in MOVIELENS_GENRES.values():
        assert set(out) <= set(GENRES)
    toy_story = ["Animation", "Children's", "Comedy"]
    assert movielens_genres(toy_story) == ["animation", "comedy", "family"]


def test_check_genres_rejects_noncanonical():
    assert check_genres(["drama", "action"]) == ["action", "drama"]
    with pytest.raises(ValueError, match="science_fiction"):
        check_genres(["science_fiction"])
