import numpy as np
import pandas as pd
import pytest
import torch

from sona.data.interactions import Interactions
from sona.models.base import Recommender
from sona.models.registry import build_model
from sona.models.two_tower import ItemFeatures, TwoTower, TwoTowerConfig
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import random_interactions

FAST = dict(n_factors=16, n_epochs=60, learning_rate=0.05, user_reg=0.01, item_reg=0.01,
            seed=3)


class TestTwoTower(RecommenderContract):
    @staticmethod
    def make_model():
        return TwoTower(TwoTowerConfig(**FAST))


class TestTwoTowerBPR(RecommenderContract):
    @staticmethod
    def make_model():
        return TwoTower(TwoTowerConfig(**{**FAST, "loss": "bpr", "batch_size": 16,
                                          "n_epochs": 40}))


def _blocks(n_users=40, n_items=40, seed=0):
    """Two taste groups: users < n/2 like items < n/2 and vice versa; each user rates half
    of their group's items, so the other half is unseen but should rank above the other
    group's items."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = np.arange(n_items // 2) + (0 if u < n_users // 2 else n_items // 2)
        for i in rng.choice(group, size=len(group) // 2, replace=False):
            rows.append((u, int(i)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["rating"], frame["timestamp"] = 5.0, np.arange(len(frame), dtype=float)
    return Interactions.from_frame(frame)


@pytest.mark.parametrize(("loss", "reg"), [("softmax", 0.2), ("sampled_softmax", 0.2),
                                         ("bpr", 0.05)])
def test_learns_taste_groups(loss, reg):
    data = _blocks()
    cfg = TwoTowerConfig(**{**FAST, "loss": loss, "n_negatives": 16, "batch_size": 8,
                            "n_epochs": 30, "user_reg": reg, "item_reg": reg})
    model = TwoTower(cfg).fit(data)
    recs = model.recommend(np.arange(40), k=10)  # seen items are excluded
    own_group = (recs.ids < 20) == (np.arange(40)[:, None] < 20)
    # every unseen in-group item (10 per user) outranks the out-group items
    assert own_group.mean() > 0.95


def test_softmax_loss_decreases_and_is_stored():
    data = random_interactions(seed=1)
    short = TwoTower(TwoTowerConfig(**{**FAST, "n_epochs": 2})).fit(data)
    long = TwoTower(TwoTowerConfig(**FAST)).fit(data)
    # log(n_items) is the loss of the all-equal initial scores
    assert short.train_loss_ < np.log(data.n_items) + 0.1
    assert long.train_loss_ < short.train_loss_ - 0.3


def test_identity_towers_at_init_and_scores_are_inner_products():
    data = random_interactions(seed=2)
    model = TwoTower(TwoTowerConfig(**{**FAST, "n_epochs": 1})).fit(data)
    net = model.network_
    with torch.no_grad():
        u = net.user_embedding.weight @ net.user_proj.weight.T
        v = net.item_embedding.weight @ net.item_proj.weight.T
        expected = (u @ v.T + net.item_bias.weight[:, 0]).numpy()
    users = data.users.ids_array[:5]
    got = model.score(np.repeat(users, 3), np.tile(data.items.ids_array[:3], 5))
    np.testing.assert_allclose(got, expected[:5, :3].ravel(), rtol=1e-5, atol=1e-6)


def test_item_features_projection_round_trip(tmp_path):
    data = random_interactions(seed=4)
    rng = np.random.default_rng(0)
    ids = data.items.ids_array[:-5]  # five items without content get zeros
    feats = ItemFeatures(ids, rng.normal(size=(len(ids), 6)).astype(np.float32))
    model = TwoTower(TwoTowerConfig(**FAST), item_features=feats).fit(data)
    assert model.network_.content_proj is not None
    assert np.abs(model.network_.content_proj.weight.detach().numpy()).max() > 0  # learned
    content = model.network_.content.numpy()
    np.testing.assert_array_equal(content[-5:], 0)
    np.testing.assert_array_equal(content[data.items.numbers(ids[:3])], feats.vectors[:3])
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = data.users.ids_array[:6]
    np.testing.assert_allclose(loaded.recommend(users, k=5).scores,
                               model.recommend(users, k=5).scores, atol=1e-6)


def test_bad_config_and_features_raise():
    data = random_interactions(seed=5)
    with pytest.raises(ValueError, match="n_factors must be >= 1"):
        TwoTower(TwoTowerConfig(n_factors=0)).fit(data)
    with pytest.raises(ValueError, match="loss must be"):
        TwoTower(TwoTowerConfig(loss="mse")).fit(data)  # type: ignore[arg-type]
    bad = ItemFeatures(data.items.ids_array[:3], np.zeros((2, 4), np.float32))
    with pytest.raises(Exception, match="3 ids but vectors of shape"):
        TwoTower(TwoTowerConfig(**FAST), item_features=bad).fit(data)


def test_registered_and_fit_restores_thread_count():
    before = torch.get_num_threads()
    model = build_model("two_tower", {**FAST, "n_epochs": 2, "n_threads": 1})
    assert isinstance(model, TwoTower)
    model.fit(random_interactions(seed=6))
    assert torch.get_num_threads() == before
