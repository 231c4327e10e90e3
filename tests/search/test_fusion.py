from __future__ import annotations

import numpy as np
import pytest

from sona.search.fusion import (
    RRF_K,
    RankingConfig,
    minmax,
    personalize,
    rerank,
    rrf,
    union,
    weighted_sum,
)


def test_rrf_known_values():
    a = np.array([10, 20, 30])
    b = np.array([30, 10])
    cand, scores = rrf([a, b], [0.35, 0.20])
    assert cand.tolist() == [10, 20, 30]
    expect = {10: 0.35 / 61 + 0.20 / 62, 20: 0.35 / 62, 30: 0.35 / 63 + 0.20 / 61}
    assert scores == pytest.approx([expect[10], expect[20], expect[30]])
    assert RRF_K == 60


def test_rrf_validates_and_respects_candidates():
    with pytest.raises(ValueError, match="2 lists but 1 weights"):
        rrf([np.array([1]), np.array([2])], [1.0])
    cand, scores = rrf([np.array([5, 6])], [1.0], candidates=np.array([6, 7]))
    assert scores.tolist() == pytest.approx([1 / 62, 0.0])


def test_weighted_sum_normalises_each_list():
    cand, scores = weighted_sum([(np.array([1, 2, 3]), np.array([10.0, 5.0, 0.0])),
                                 (np.array([3, 4]), np.array([0.9, 0.1]))], [0.5, 0.5])
    assert cand.tolist() == [1, 2, 3, 4]
    assert scores.tolist() == pytest.approx([0.5, 0.25, 0.5, 0.0])


def test_minmax_and_union():
    assert minmax(np.array([2.0, 4.0, np.nan])).tolist() == [0.0, 1.0, 0.0]
    assert minmax(np.array([3.0, 3.0])).tolist() == [1.0, 1.0]
    assert union([np.array([3, 1]), np.array([1, 2])]).tolist() == [3, 1, 2]


def test_ranking_config_validation():
    RankingConfig().validated()
    with pytest.raises(ValueError, match="sum to 1"):
        RankingConfig(vector=0.5).validated()
    with pytest.raises(ValueError, match=">= 0"):
        RankingConfig(vector=-0.1, keyword=0.75).validated()


def test_rerank_applies_weights():
    cfg = RankingConfig(vector=0.5, keyword=0.3, quality=0.2, freshness=0.0)
    out = rerank({"vector": np.array([1.0, 0.0]), "keyword": np.array([0.0, 2.0])},
                 {"quality": np.array([0.5, 1.0]), "freshness": np.array([1.0, 1.0])}, cfg)
    assert out.tolist() == pytest.approx([0.5 + 0.1, 0.3 + 0.2])
    fused = rerank({"fused": np.array([0.2, 0.1])}, {}, cfg)
    assert fused.tolist() == pytest.approx([0.8, 0.0])


def test_personalize_blend():
    out = personalize(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25)
    assert out.tolist() == pytest.approx([0.75, 0.25])
    assert personalize(np.array([3.0]), np.array([1.0]), 0.0).tolist() == [3.0]
    with pytest.raises(ValueError):
        personalize(np.array([1.0]), np.array([1.0]), 1.5)
