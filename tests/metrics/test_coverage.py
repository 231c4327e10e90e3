"""Beyond-accuracy metrics: Microsoft Recommenders known answers, properties, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings

from sona.metrics import catalog_coverage, intra_list_diversity, novelty, personalization
from sona.metrics import coverage as coverage_module
from sona.testing.strategies import ranking_cases, vector_cases
from sona.types import PAD_ID, PAD_IDX, Recommendations

# Microsoft Recommenders' diversity_data fixture: training log and two items per user.
MS_TRAIN = [(1, 1), (1, 2), (1, 4), (2, 3), (2, 4), (3, 3), (3, 4), (3, 5)]
MS_RECO = np.array([[3, 5], [2, 5], [1, 2]])
MS_FEATURES = np.array([
    [0.0, 1.0, 1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0, 1.0, 0.0],
    [0.0, 0.0, 1.0, 0.0, 1.0],
    [0.0, 0.0, 0.0, 1.0, 1.0],
])  # rows are items 1..5


def test_catalog_coverage_microsoft_example() -> None:
    assert catalog_coverage(MS_RECO, 5) == pytest.approx(0.8)
    assert catalog_coverage(np.array([[PAD_ID, PAD_ID]]), 5) == 0.0


def test_novelty_microsoft_example() -> None:
    # Microsoft Recommenders' item novelty is -log2(count / n_interactions): items 1..5 ->
    # 3, 3, 2, 1.41504, 3; its overall novelty 2.83333 averages over all recommendations.
    counts = {}
    for _, item in MS_TRAIN:
        counts[item] = counts.get(item, 0) + 1
    values = novelty(MS_RECO, counts, len(MS_TRAIN))
    np.testing.assert_allclose(values, [2.5, 3.0, 3.0])
    assert values.mean() == pytest.approx(2.83333, abs=1e-4)
    assert novelty(np.array([[4]]), counts, 8)[0] == pytest.approx(1.41504, abs=1e-4)


def test_novelty_per_user_share_and_padding() -> None:
    pop = {10: 4, 11: 1, 12: 2}
    values = novelty(np.array([[10, 11, 11], [PAD_ID, PAD_ID, PAD_ID], [12, PAD_ID, 10]]), pop, 4)
    np.testing.assert_allclose(values[[0, 2]], [(0 + 2) / 2, (1 + 0) / 2])
    assert np.isnan(values[1])


def test_novelty_rejects_unknown_or_out_of_range_popularity() -> None:
    with pytest.raises(ValueError, match=r"\[99\]"):
        novelty(np.array([[10, 99]]), {10: 1}, 3)
    with pytest.raises(ValueError, match="out of range"):
        novelty(np.array([[10]]), {10: 5}, 3)
    with pytest.raises(ValueError, match="n_users"):
        novelty(np.array([[10]]), {10: 1}, 0)


def test_intra_list_diversity_microsoft_example() -> None:
    # Microsoft Recommenders user_diversity with item feature vectors: 0.5 for every user
    idx = MS_RECO - 1
    np.testing.assert_allclose(intra_list_diversity(idx, MS_FEATURES), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(intra_list_diversity(idx, sp.csr_matrix(MS_FEATURES)),
                               [0.5, 0.5, 0.5])


def test_intra_list_diversity_edge_cases() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    idx = np.array([[0, 0, PAD_IDX], [0, 2, PAD_IDX], [0, 3, 1], [PAD_IDX] * 3])
    values = intra_list_diversity(idx, vectors)
    assert np.isnan(values[0]) and np.isnan(values[3])  # one distinct item, empty list
    assert values[1] == pytest.approx(1.0)  # a zero vector is at distance 1
    assert values[2] == pytest.approx((2.0 + 1.0 + 1.0) / 3)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 4\)"):
        intra_list_diversity(np.array([[0, 4]]), vectors)
    with pytest.raises(ValueError, match="integer"):
        intra_list_diversity(np.array([[0.0, 1.0]]), vectors)


def test_personalization_known_values() -> None:
    assert personalization(np.array([[1, 2], [3, 4]])) == 1.0
    assert personalization(np.array([[1, 2], [2, 1]])) == 0.0
    # pairs: J=1, J=0, J=0
    assert personalization(np.array([[1, 2], [1, 2], [3, 4]])) == pytest.approx(2 / 3)
    # unequal lengths: |{1}∩{1,2,3}| / |{1,2,3}| = 1/3; empty lists are skipped
    assert personalization(np.array([[1, PAD_ID, PAD_ID], [1, 2, 3], [PAD_ID] * 3])) == (
        pytest.approx(2 / 3))
    assert math.isnan(personalization(np.array([[1, 2]])))
    scores = np.array([[1.0, np.nan], [1.0, np.nan]])
    assert personalization(Recommendations(np.array([[1, 2], [1, 3]]), scores)) == 0.0


def test_chunked_paths_match_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    rec = rng.integers(0, 40, size=(57, 6))
    rec[rng.random(rec.shape) < 0.1] = PAD_ID
    vectors = rng.normal(size=(40, 3))
    whole_p, whole_d = personalization(rec), intra_list_diversity(rec, vectors)
    monkeypatch.setattr(coverage_module, "_BLOCK_ENTRIES", 50)
    assert personalization(rec) == pytest.approx(whole_p, abs=1e-12)
    np.testing.assert_allclose(intra_list_diversity(rec, vectors), whole_d, atol=1e-12)


def test_catalog_coverage_errors() -> None:
    with pytest.raises(ValueError, match="exceed"):
        catalog_coverage(np.array([[1, 2, 3]]), 2)
    with pytest.raises(ValueError, match="positive"):
        catalog_coverage(np.array([[1]]), 0)


# --- properties ---------------------------------------------------------------------------


def _lists(rec: np.ndarray) -> list[set[int]]:
    return [{x for x in row if x != PAD_ID} for row in rec.tolist()]


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_coverage_and_personalization_match_definitions(case) -> None:
    lists = _lists(case.recommended)
    n_items = max(len(set().union(*lists)), 1) + 3
    assert catalog_coverage(case.recommended, n_items) == len(set().union(*lists)) / n_items
    nonempty = [s for s in lists if s]
    value = personalization(case.recommended)
    if len(nonempty) < 2:
        assert math.isnan(value)
    else:
        overlaps = [len(a & b) / len(a | b) for a, b in itertools.combinations(nonempty, 2)]
        assert value == pytest.approx(1 - np.mean(overlaps), abs=1e-12)
        assert 0.0 <= value <= 1.0


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_novelty_range_and_definition(case) -> None:
    n_users = 50
    pop = {i: float(1 + (i * 7) % n_users) for i in range(100, 121)}
    values = novelty(case.recommended, pop, n_users)
    for row, value in zip(_lists(case.recommended), values, strict=True):
        if not row:
            assert math.isnan(value)
        else:
            expected = np.mean([-math.log2(pop[i] / n_users) for i in row])
            assert value == pytest.approx(expected, abs=1e-12)
            assert 0.0 <= value <= math.log2(n_users)


def _ild_reference(row: list[int], vectors: np.ndarray) -> float:
    items = list(dict.fromkeys(i for i in row if i != PAD_IDX))
    if len(items) < 2:
        return math.nan
    dists = []
    for a, b in itertools.combinations(items, 2):
        na, nb = np.linalg.norm(vectors[a]), np.linalg.norm(vectors[b])
        cos = 0.0 if na == 0 or nb == 0 else float(vectors[a] @ vectors[b] / (na * nb))
        dists.append(1.0 - cos)
    return float(np.mean(dists))


@settings(max_examples=100, deadline=None)
@given(vector_cases())
def test_intra_list_diversity_matches_definition(case) -> None:
    values = intra_list_diversity(case.recommended_idx, case.item_vectors)
    expected = [_ild_reference(row, case.item_vectors) for row in case.recommended_idx.tolist()]
    np.testing.assert_allclose(values, expected, atol=1e-12)
    defined = values[~np.isnan(values)]
    assert ((defined >= -1e-12) & (defined <= 2 + 1e-12)).all()


@settings(max_examples=60, deadline=None)
@given(vector_cases(nonnegative=True))
def test_intra_list_diversity_nonnegative_vectors_in_unit_range(case) -> None:
    values = intra_list_diversity(case.recommended_idx, sp.csr_matrix(case.item_vectors))
    defined = values[~np.isnan(values)]
    assert ((defined >= -1e-12) & (defined <= 1 + 1e-12)).all()
    np.testing.assert_allclose(values, intra_list_diversity(case.recommended_idx,
                                                            case.item_vectors), atol=1e-12)
