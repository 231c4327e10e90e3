from __future__ import annotations

import numpy as np
import pytest

from sona.search.filters import (
    DocumentArrays,
    SearchFilters,
    canonical_genres,
    canonical_platform,
    normalize_maturity,
)


def test_label_canonicalisation():
    assert canonical_genres(["Sci-Fi", "comedies"]) == ("sci_fi", "comedy")
    assert canonical_platform("Disney+") == "disney_plus"
    assert canonical_platform("HBO Max") == "hbo_max"
    assert normalize_maturity("pg-13") == "PG13"
    with pytest.raises(ValueError, match="unknown genre 'blah'"):
        canonical_genres(["blah"])
    with pytest.raises(ValueError, match="unknown platform 'netflx'"):
        canonical_platform("netflx")
    with pytest.raises(ValueError, match="unknown maturity rating 'X'"):
        normalize_maturity("X")


def test_validated_checks_ranges():
    with pytest.raises(ValueError, match="year_min 2000 is greater than year_max 1990"):
        SearchFilters(year_min=2000, year_max=1990).validated()
    with pytest.raises(ValueError, match="rating_max must lie in"):
        SearchFilters(rating_max=11).validated()
    f = SearchFilters(genres=("Kids",), platforms=("prime",)).validated()
    assert f.genres == ("family",) and f.platforms == ("prime_video",)


def test_merge_explicit_wins_and_exclusions_union():
    explicit = SearchFilters(genres=("drama",), exclude_ids=(1,))
    intent = SearchFilters(genres=("comedy", "sci_fi"), genre_mode="all", year_min=1990,
                           exclude_ids=(2,))
    merged = explicit.merged(intent)
    assert merged.genres == ("drama",) and merged.genre_mode == "any"
    assert merged.year_min == 1990 and merged.exclude_ids == (1, 2)
    assert SearchFilters().merged(intent).genre_mode == "all"
    assert merged.to_dict() == {"genres": ["drama"], "genre_mode": "any", "year_min": 1990,
                                "exclude_ids": [1, 2]}


def test_mask_semantics(small_docs):
    arrays = DocumentArrays.from_documents(small_docs)
    ids = small_docs["item_id"].to_numpy()

    def hits(**kw):
        return sorted(ids[arrays.mask(SearchFilters(**kw))].tolist())

    assert hits(genres=("sci_fi", "comedy"), genre_mode="all") == [5, 6, 12]
    assert hits(genres=("horror", "romance")) == [4, 7, 10, 11]
    assert hits(platforms=("hulu",)) == [4, 5, 12]
    assert hits(year_min=1995, year_max=1996) == [3, 8, 9]
    assert hits(max_maturity="G") == [3]
    assert hits(runtime_min=150) == [9]
    assert len(hits()) == 12
    mask = arrays.mask(SearchFilters(), np.array([0, 1]))
    assert not mask[:2].any() and mask[2:].all()
