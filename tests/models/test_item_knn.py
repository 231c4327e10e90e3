import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Interactions
from sona.models.item_knn import ItemKNN, ItemKNNConfig
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


class TestItemKNN(RecommenderContract):
    @staticmethod
    def make_model():
        return ItemKNN(ItemKNNConfig(n_neighbors=20, shrinkage=2.0))


def _dense_similarity(x, shrinkage):
    """Hand computation: cosine with shrinkage in the denominator, zero diagonal."""
    n = x.shape[1]
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                dot = x[:, i] @ x[:, j]
                sim[i, j] = dot / (np.linalg.norm(x[:, i]) * np.linalg.norm(x[:, j]) + shrinkage)
    return sim


def test_similarity_equals_hand_computation_with_shrinkage():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3, 3, 3, 4],
                          "item_id": [10, 11, 12, 10, 11, 11, 12, 13, 13]})
    data = Interactions.from_frame(frame)
    model = ItemKNN(ItemKNNConfig(n_neighbors=10, shrinkage=1.5)).fit(data)
    x = data.matrix().toarray()
    expected = _dense_similarity(x, 1.5)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-6)
    # items 10 and 11: co-liked by 2 users, norms sqrt(2) and sqrt(3)
    i10, i11 = data.items.numbers([10, 11])
    assert model.similarity_[i10, i11] == pytest.approx(2 / (np.sqrt(6) + 1.5), rel=1e-6)
    # score = X @ S
    recs = model.recommend([4], k=3, exclude_seen=True)
    scores = x[data.users.numbers([4])[0]] @ expected
    order = np.argsort(-scores, kind="stable")
    order = [i for i in order if x[data.users.numbers([4])[0], i] == 0][:3]
    np.testing.assert_array_equal(recs.ids[0], data.items.ids(np.array(order)))
    np.testing.assert_allclose(recs.scores[0], scores[order], rtol=1e-6)


def test_keeps_top_neighbors_per_column():
    data = random_interactions(seed=5)
    full = ItemKNN(ItemKNNConfig(n_neighbors=10_000, shrinkage=3.0)).fit(data).similarity_
    pruned = ItemKNN(ItemKNNConfig(n_neighbors=4, shrinkage=3.0)).fit(data).similarity_
    full_d, pruned_d = full.toarray(), pruned.toarray()
    assert ((pruned_d > 0).sum(axis=0) <= 4).all()
    for j in range(full_d.shape[1]):
        col = full_d[:, j]
        kept = np.flatnonzero(pruned_d[:, j])
        if len(kept):
            # the kept entries are the largest of the full column, with unchanged values
            np.testing.assert_allclose(pruned_d[kept, j], col[kept])
            assert col[kept].min() >= np.sort(col)[::-1][min(4, (col > 0).sum()) - 1] - 1e-7


def test_weighted_uses_weight_column():
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 11],
                          "weight": [1.0, 3.0, 2.0, 1.0]})
    data = Interactions.from_frame(frame)
    model = ItemKNN(ItemKNNConfig(shrinkage=0.0, binary=False)).fit(data)
    expected = (1 * 3 + 2 * 1) / (np.sqrt(5) * np.sqrt(10))
    assert model.similarity_[0, 1] == pytest.approx(expected, rel=1e-6)


def test_bad_config_raises():
    data = random_interactions(seed=1)
    with pytest.raises(ValueError, match="n_neighbors"):
        ItemKNN(ItemKNNConfig(n_neighbors=0)).fit(data)
    with pytest.raises(ValueError, match="shrinkage"):
        ItemKNN(ItemKNNConfig(shrinkage=-1.0)).fit(data)
