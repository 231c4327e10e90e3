import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sona.errors import ConfigError
from sona.models.lightgcn import (
    LightGCN,
    LightGCNConfig,
    _sample_triples,
    normalized_adjacency,
    propagate,
    to_torch_csr,
)
from sona.models.registry import build_model
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import checkerboard


class TestLightGCN(RecommenderContract):
    atol = 1e-4

    @staticmethod
    def make_model():
        return LightGCN(LightGCNConfig(n_factors=16, n_layers=2, epochs=40, batch_size=256,
                                       lr=0.02, seed=3))


# users x items: u0 likes i0, i1; u1 likes i1, i2
R = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))


def test_normalized_adjacency_by_hand():
    # degrees: u0 2, u1 2, i0 1, i1 2, i2 1; nodes u0 u1 i0 i1 i2
    a = normalized_adjacency(R).toarray()
    s2, s1 = 1 / np.sqrt(2 * 1), 1 / np.sqrt(2 * 2)
    expected = np.zeros((5, 5))
    expected[0, 2] = expected[2, 0] = s2  # u0 - i0
    expected[0, 3] = expected[3, 0] = s1  # u0 - i1
    expected[1, 3] = expected[3, 1] = s1  # u1 - i1
    expected[1, 4] = expected[4, 1] = s2  # u1 - i2
    np.testing.assert_allclose(a, expected)


def test_propagation_is_the_mean_of_adjacency_powers():
    a = normalized_adjacency(R).toarray()
    e = np.random.default_rng(0).normal(size=(5, 4))
    expected = (e + a @ e + a @ a @ e + a @ a @ a @ e) / 4
    got = propagate(to_torch_csr(normalized_adjacency(R)), torch.tensor(e, dtype=torch.float32),
                    3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    assert torch.equal(propagate(to_torch_csr(normalized_adjacency(R)),
                                 torch.ones(5, 2), 0), torch.ones(5, 2))


def test_propagation_gradient_matches_dense_autograd():
    adjacency = normalized_adjacency(R)
    e = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    sparse_e = e.clone().requires_grad_(True)
    propagate(to_torch_csr(adjacency), sparse_e, 2)[[0, 3]].pow(2).sum().backward()
    dense_e = e.clone().requires_grad_(True)
    a = torch.tensor(adjacency.toarray(), dtype=torch.float32)
    ((dense_e + a @ dense_e + a @ (a @ dense_e)) / 3)[[0, 3]].pow(2).sum().backward()
    np.testing.assert_allclose(sparse_e.grad.numpy(), dense_e.grad.numpy(), atol=1e-6)


def test_sampled_negatives_are_never_positives():
    data = checkerboard(20)
    matrix = sp.csr_matrix((data.matrix() > 0).astype(np.float32))
    users, pos, neg = _sample_triples(matrix, 5000, np.random.default_rng(0))
    dense = matrix.toarray()
    assert dense[users, pos].all()
    assert not dense[users, neg].any()


def test_training_learns_and_restores_thread_count():
    before = torch.get_num_threads()
    data = checkerboard(30)
    model = LightGCN(LightGCNConfig(n_factors=8, n_layers=2, epochs=30, batch_size=128,
                                    lr=0.02, n_threads=1)).fit(data)
    assert torch.get_num_threads() == before
    assert model.user_factors_.shape == (30, 8) and model.item_factors_.shape == (30, 8)
    # same-parity items outscore the other parity for every user (mean over the lists)
    scores = model.user_factors_ @ model.item_factors_.T
    parity = (np.arange(30)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert (np.where(parity, scores, 0).sum(1) / parity.sum(1)
            > np.where(~parity, scores, 0).sum(1) / (~parity).sum(1)).all()


def test_config_checked_on_fit():
    with pytest.raises(ConfigError):
        LightGCN(LightGCNConfig(lr=0.0)).fit(checkerboard(10))
    with pytest.raises(ConfigError):
        LightGCN(LightGCNConfig(epochs=0)).fit(checkerboard(10))


def test_registered_for_experiment_yaml():
    model = build_model("lightgcn", {"epochs": 3, "n_layers": 2})
    assert isinstance(model, LightGCN) and model.config.n_layers == 2
