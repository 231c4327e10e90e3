import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError, NotFittedError
from sona.models.base import Recommender
from sona.models.cold_start import ColdProfile, ColdStart, ColdStartConfig, ContentColdItems
from sona.models.side import ItemSideData
from sona.testing.contracts import RecommenderContract

DAY = 86400.0


def _users(ids):
    ids = np.asarray(ids)
    return pd.DataFrame({"user_id": ids, "age": 15 + (ids % 5) * 10,
                         "gender": np.where(ids % 2 == 0, "M", "F"),
                         "occupation": np.where(ids % 3 == 0, "student", "engineer"),
                         "zip_code": [f"{i % 10}{i:04d}" for i in ids]})


class TestColdStart(RecommenderContract):
    @staticmethod
    def make_model():
        return ColdStart(ColdStartConfig(side_source=None, min_segment_users=2),
                         user_side=_users(np.arange(1000, 1100)))


def _world():
    """Students (users 0-5) watch items 10-12, engineers (6-11) items 20-22; item 30 is
    watched by two users in the last week of the log only."""
    rows = []
    for u in range(12):
        own = [10, 11, 12] if u < 6 else [20, 21, 22]
        rows += [(u, i, 100 * DAY) for i in own]
    rows += [(0, 30, 200 * DAY), (7, 30, 201 * DAY), (1, 40, 150 * DAY)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    users = pd.DataFrame({"user_id": range(12), "age": [20] * 12,
                          "gender": ["F", "M"] * 6,
                          "occupation": ["student"] * 6 + ["engineer"] * 6,
                          "zip_code": ["10001"] * 12})
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": [10, 11, 12, 20, 21, 22, 30, 40], "title": list("abcdefgh"),
        "genres": [("Comedy",), ("Comedy",), ("Drama",), ("Horror",), ("Horror",),
                   ("Drama",), ("Comedy",), ("Western",)]}))
    return Interactions.from_frame(frame), users, catalog


def _fit(**config):
    data, users, catalog = _world()
    cfg = ColdStartConfig(side_source=None, min_segment_users=3, **config)
    return ColdStart(cfg, user_side=users, side=ItemSideData(catalog)).fit(data)


def test_tiers_follow_spec_order_and_confidences():
    model = _fit(attributes=["occupation", "gender"], trending_days=7)
    out = model.recommend_cold([
        ColdProfile(signup_genres=("Horror",)),
        ColdProfile(occupation="Student", gender="M"),
        ColdProfile(occupation="engineer"),
        ColdProfile(age=30),  # no attribute of the segments: trending
    ], k=3)
    recs = out.recommendations
    assert out.sources == ["genres", "demographic", "demographic", "trending"]
    assert recs.ids[0].tolist()[:2] == [20, 21] and recs.ids[0, 2] == -1  # only 2 horror items
    np.testing.assert_allclose(recs.scores[0, :2], [0.8, 0.78])
    # student + M has 3 users (>= 3): their segment's items first
    assert set(recs.ids[1].tolist()) == {10, 11, 12}
    np.testing.assert_allclose(recs.scores[1], [0.7, 0.68, 0.66])
    assert set(recs.ids[2].tolist()) == {20, 21, 22}
    # trending: the last 7 days of the log hold only item 30
    assert recs.ids[3, 0] == 30
    np.testing.assert_allclose(recs.scores[3], [0.6, 0.59, 0.58])


def test_small_segments_back_off_and_exclusions_apply():
    model = _fit(attributes=["occupation", "gender"])
    # every (occupation, gender) segment has 3 users; with min 4 they back off to occupation
    strict = ColdStart(ColdStartConfig(side_source=None, min_segment_users=4,
                                       attributes=["occupation", "gender"]),
                       user_side=_world()[1], side=ItemSideData(_world()[2])).fit(_world()[0])
    a = strict.recommend_cold([ColdProfile(occupation="student", gender="F")], k=3)
    assert a.sources == ["demographic"] and set(a.recommendations.ids[0].tolist()) == {10, 11, 12}
    b = model.recommend_cold([ColdProfile(occupation="student")], k=3, exclude=[[10, 999]])
    assert 10 not in b.recommendations.ids[0].tolist()


def test_known_users_get_their_segment(tmp_path):
    model = _fit(attributes=["occupation"])
    recs = model.recommend([0, 6], k=3, exclude_seen=False)
    assert set(recs.ids[0].tolist()) == {10, 11, 12}
    assert set(recs.ids[1].tolist()) == {20, 21, 22}
    model.save(tmp_path / "c")
    loaded = Recommender.load(tmp_path / "c")
    again = loaded.recommend_cold([ColdProfile(occupation="engineer")], k=3)
    assert set(again.recommendations.ids[0].tolist()) == {20, 21, 22}


def test_bad_config():
    data, users, _ = _world()
    with pytest.raises(ConfigError, match="attributes"):
        ColdStart(ColdStartConfig(side_source=None, attributes=[]), user_side=users).fit(data)


def test_content_cold_items_known_answer():
    # warm items along x and y; user 0 watched the x item, user 1 both
    matrix = sp.csr_matrix(np.array([[1, 0], [1, 1]]))
    scorer = ContentColdItems().fit(matrix, np.array([[1.0, 0.0], [0.0, 2.0]]))
    new = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    scores = scorer.score(np.array([0, 1]), new)
    np.testing.assert_allclose(scores[0], [1.0, 0.0, np.sqrt(0.5)])
    np.testing.assert_allclose(scores[1], [np.sqrt(0.5), np.sqrt(0.5), 1.0])
    with pytest.raises(ValueError, match="dimension"):
        scorer.score(np.array([0]), np.ones((1, 3)))
    with pytest.raises(NotFittedError):
        ContentColdItems().score(np.array([0]), new)
