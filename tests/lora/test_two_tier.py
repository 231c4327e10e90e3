import sqlite3

import numpy as np
import pytest
import torch

from sona.db import sqlite_url
from sona.lora import WEIGHTS_FILE, AdapterStore, DirectoryAdapterStore
from sona.lora.two_tier import (
    SEGMENT_PREFIX,
    AdapterTrainingConfig,
    InsufficientEventsError,
    PersonalizedScorer,
)
from sona.models.two_tower import TwoTower, TwoTowerConfig
from sona.testing.fixtures import random_interactions

CFG = AdapterTrainingConfig(rank=4, alpha=8, n_steps=15, learning_rate=0.1)


@pytest.fixture(scope="module")
def base():
    data = random_interactions(n_users=40, n_items=150, n_interactions=900, seed=7)
    return TwoTower(TwoTowerConfig(n_factors=16, n_epochs=40, learning_rate=0.05,
                                   user_reg=0.01, item_reg=0.01, seed=1)).fit(data)


def _events(base, user, n=12):
    """``n`` items the user has not seen in base training."""
    seen = set(base.seen_[base.users_.number(user)].indices.tolist())
    return [base.items_.id(i) for i in range(len(base.items_)) if i not in seen][:n]


def _scorer(base, store, config=CFG, **kwargs):
    return PersonalizedScorer(base, store, config, **kwargs)


def test_adapter_changes_only_its_user(base, tmp_path):
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path))
    users = base.users_.ids_array[:6].tolist()
    before = scorer.user_vectors(users)
    np.testing.assert_allclose(before, base.user_vectors_[:6], atol=1e-6)  # no adapter: base
    events = _events(base, users[0])
    record = scorer.train_user_adapter(users[0], events)
    after = scorer.user_vectors(users)
    assert np.abs(after[0] - before[0]).max() > 1e-2
    np.testing.assert_array_equal(after[1:], before[1:])
    # the user's own events move up in their ranking
    ev = base.items_.numbers(events)
    old = (before[0] @ base.item_vectors_.T + base.item_bias_)
    new = (after[0] @ base.item_vectors_.T + base.item_bias_)
    assert (np.argsort(-new).argsort()[ev]).mean() < (np.argsort(-old).argsort()[ev]).mean()
    assert record.metrics["loss"] < record.metrics["loss_first"]
    assert record.rank == 4 and record.scaling_factor == 2.0
    assert record.training_iterations == 15 and record.metrics["events_used"] == 12
    assert record.config["r"] == 4 and record.config["target_modules"] == ["user_proj"]
    # base model untouched
    np.testing.assert_allclose(base.recommend(users, k=5).scores,
                               base.recommend(users, k=5).scores)


def test_fewer_than_min_events_raises_with_count(base, tmp_path):
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path))
    user = base.users_.ids_array[0]
    with pytest.raises(InsufficientEventsError, match=">= 10 events.*got 9") as err:
        scorer.train_user_adapter(user, _events(base, user, 9))
    assert err.value.current_count == 9
    # items unknown to the base model do not count
    with pytest.raises(InsufficientEventsError, match="got 9 \\(of 11 events\\)"):
        scorer.train_user_adapter(user, [*_events(base, user, 9), 99999991, 99999992])
    assert scorer.store.latest(str(user), "user") is None


@pytest.mark.parametrize("backend", ["directory", "sql"])
@pytest.mark.parametrize(("dtype", "atol"), [("float32", 1e-6), ("float16", 1e-3)])
def test_round_trip_through_store(base, tmp_path, backend, dtype, atol):
    store = AdapterStore(tmp_path / "a" if backend == "directory" else
                         sqlite_url(tmp_path / "a.db"))
    config = AdapterTrainingConfig(rank=4, alpha=8, n_steps=15, learning_rate=0.1,
                                   dtype=dtype)
    trainer = _scorer(base, store, config)
    users = base.users_.ids_array[:3].tolist()
    records = [trainer.train_user_adapter(u, _events(base, u)) for u in users]
    trained = trainer.user_vectors(users)
    fresh = _scorer(base, AdapterStore(store.root if backend == "directory" else
                                       sqlite_url(tmp_path / "a.db")), config)
    np.testing.assert_allclose(fresh.user_vectors(users), trained, atol=atol)
    for record in records:
        user = record.user_id
        back = store.load(user, "user")
        assert back.dtype == dtype
        for name, value in record.tensors.items():
            np.testing.assert_allclose(back.tensors[name], value, atol=atol)
        # size_bytes is the size of what holds the weights
        if backend == "directory":
            path = store.version_dir(user, "user", back.version) / WEIGHTS_FILE
            assert back.size_bytes == path.stat().st_size
        else:
            with sqlite3.connect(tmp_path / "a.db") as con:
                (blob_len,) = con.execute(
                    "SELECT length(weights) FROM lora_adapters WHERE user_id = ? AND "
                    "version = ?", (user, back.version)).fetchone()
            assert back.size_bytes == blob_len == 2 * 4 * 16 * np.dtype(dtype).itemsize


def test_versions_increment_and_latest_wins(base, tmp_path):
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path))
    user = base.users_.ids_array[2]
    events = _events(base, user, 20)
    first = scorer.train_user_adapter(user, events[:10])
    v1 = scorer.user_vectors([user])
    second = scorer.train_user_adapter(user, events[10:])
    v2 = scorer.user_vectors([user])
    assert (first.version, second.version) == (1, 2)
    assert scorer.store.versions(str(user), "user") == [1, 2]
    assert np.abs(v1 - v2).max() > 1e-3  # the new version is used at once
    assert scorer.store.delete(str(user)) == 2
    np.testing.assert_allclose(_scorer(base, scorer.store).user_vectors([user]),
                               base.user_vectors_[[base.users_.number(user)]], atol=1e-6)


def test_segment_adapter_applies_to_members_only(base, tmp_path):
    users = base.users_.ids_array[:6].tolist()
    segments = {u: "a" for u in users[:3]}
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path), segments=segments)
    before = scorer.user_vectors(users)
    record = scorer.train_segment_adapter("a", {u: _events(base, u, 8) for u in users[:3]})
    assert record.user_id == SEGMENT_PREFIX + "a" and record.adapter_name == "segment"
    after = scorer.user_vectors(users)
    assert np.abs(after[:3] - before[:3]).max(axis=1).min() > 1e-3
    np.testing.assert_array_equal(after[3:], before[3:])
    no_seg = scorer.user_vectors(users, use_segments=False)
    np.testing.assert_allclose(no_seg, before, atol=1e-6)


def test_cold_user_starts_from_mean_embedding(base, tmp_path):
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path))
    mean_vec = scorer.user_vectors(["new-user"])
    with torch.no_grad():
        expected = scorer.net.user_proj.base_layer(scorer.net.user_embedding.weight.mean(0))
    np.testing.assert_allclose(mean_vec[0], expected.numpy(), atol=1e-6)
    scorer.train_user_adapter("new-user", base.items_.ids_array[:10].tolist())
    recs = scorer.recommend_personalized(["new-user"], k=5, exclude_seen=False)
    # a cold user trained on ten items gets them back first
    assert set(recs.ids[0].tolist()) <= set(base.items_.ids_array[:10].tolist())


def test_recommend_excludes_seen_and_extra_items(base, tmp_path):
    scorer = _scorer(base, DirectoryAdapterStore(tmp_path))
    users = base.users_.ids_array[:4].tolist()
    extra = {users[0]: _events(base, users[0], 3)}
    recs = scorer.recommend_personalized(users, k=8, exclude=extra)
    for row, user in enumerate(users):
        seen = set(base.items_.ids(base.seen_[base.users_.number(user)].indices).tolist())
        assert not seen & set(recs.ids[row].tolist())
    assert not set(extra[users[0]]) & set(recs.ids[0].tolist())
    # without adapters the personalised list equals the base model's
    plain = base.recommend(users[1:], k=8)
    np.testing.assert_array_equal(recs.ids[1:], plain.ids)
    np.testing.assert_allclose(recs.scores[1:], plain.scores, atol=1e-5)


def test_directory_adapter_loads_with_peft_from_pretrained(base, tmp_path):
    from peft import PeftModel

    from sona.models._two_tower_net import network_from_state

    store = DirectoryAdapterStore(tmp_path)
    scorer = _scorer(base, store)
    user = base.users_.ids_array[5]
    record = scorer.train_user_adapter(user, _events(base, user))
    net = network_from_state({k: v.numpy() for k, v in base.network_.state_dict().items()})
    model = PeftModel.from_pretrained(net, str(store.version_dir(str(user), "user",
                                                                 record.version)))
    with torch.no_grad():
        vec = model.base_model.model.user_vectors(torch.tensor([base.users_.number(user)]))
    np.testing.assert_allclose(vec.numpy(), scorer.user_vectors([user]), atol=1e-6)
