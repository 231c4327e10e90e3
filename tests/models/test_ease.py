import numpy as np

from sona.models.ease import EASE, EASEConfig
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions


class TestEASE(RecommenderContract):
    @staticmethod
    def make_model():
        return EASE(EASEConfig(l2=5.0))


def test_ease_matches_closed_form():
    data = random_interactions(seed=2)
    model = EASE(EASEConfig(l2=3.0)).fit(data)
    x = (data.matrix().toarray() > 0).astype(float)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.testing.assert_allclose(model.weights_, b, atol=1e-5)
    assert np.allclose(np.diag(model.weights_), 0)
