"""SPEC §2.2 two-tier LoRA: shapes, scoring, SGD on B only, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sona.errors import DataError
from sona.lora import (
    AdapterStore,
    LoRAAdapter,
    LoRAConfig,
    init_base_matrix,
    lora_scores,
    train_adapter,
)


def _problem(n: int = 30, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, dim)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    pref = content[: n // 2].mean(axis=0)
    pref /= np.linalg.norm(pref)
    # items close to the preference were engaged with, the others not
    labels = (content @ pref > 0).astype(np.float64)
    return content, labels, pref.astype(np.float32)


def test_base_matrix_shape_scale_and_seed() -> None:
    cfg = LoRAConfig(rank=8, seed=3)
    a = init_base_matrix(512, cfg)
    assert a.shape == (8, 512) and a.dtype == np.float32
    assert a.std() == pytest.approx(np.sqrt(2 / 520), rel=0.05)
    assert abs(a.mean()) < 0.01
    np.testing.assert_array_equal(a, init_base_matrix(512, cfg))
    with pytest.raises(ValueError, match="dim and rank"):
        init_base_matrix(0, cfg)


def test_new_adapter_is_identity_free_and_torch_matches_numpy() -> None:
    cfg = LoRAConfig(rank=4)
    base = init_base_matrix(16, cfg)
    content, _, pref = _problem()
    zero = LoRAAdapter(base, None, cfg.scaling)
    assert torch.count_nonzero(zero(torch.as_tensor(content))) == 0
    b = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    adapter = LoRAAdapter(base, b, cfg.scaling)
    ours = adapter.score(torch.as_tensor(content), torch.as_tensor(pref)).detach().numpy()
    np.testing.assert_allclose(ours, lora_scores(base, b, content, pref, cfg.scaling), atol=1e-5)
    assert np.abs(ours).max() <= 1.0
    with pytest.raises(ValueError, match="shape"):
        LoRAAdapter(base, np.zeros((4, 16), np.float32), cfg.scaling)


def test_training_lowers_bce_and_changes_only_b() -> None:
    cfg = LoRAConfig(rank=4, epochs=5, lr=0.05)
    base = init_base_matrix(16, cfg)
    content, labels, pref = _problem()
    result = train_adapter(base, None, content, labels, pref, interaction_count=100, config=cfg)
    assert result.user_matrix.shape == (16, 4)
    assert result.iterations == 5 * 30 and result.events_used == 30
    assert result.losses[-1] < result.losses[0]
    np.testing.assert_array_equal(base, init_base_matrix(16, cfg))  # A untouched
    # liked items now score above disliked ones
    s = lora_scores(base, result.user_matrix, content, pref, cfg.scaling)
    assert s[labels == 1].mean() > s[labels == 0].mean()


def test_cold_users_learn_faster() -> None:
    cfg = LoRAConfig(rank=4, lr=0.001, cold_lr=0.05, cold_interactions=20)
    base = init_base_matrix(16, cfg)
    content, labels, pref = _problem()
    cold = train_adapter(base, None, content, labels, pref, interaction_count=12, config=cfg)
    warm = train_adapter(base, None, content, labels, pref, interaction_count=500, config=cfg)
    assert np.abs(cold.user_matrix).sum() > 10 * np.abs(warm.user_matrix).sum()


def test_training_needs_min_events() -> None:
    cfg = LoRAConfig(rank=4)
    content, labels, pref = _problem(n=9)
    with pytest.raises(DataError, match=">= 10 events, got 9"):
        train_adapter(init_base_matrix(16, cfg), None, content, labels, pref,
                      interaction_count=9, config=cfg)


def test_adapter_store_versions(tmp_path) -> None:
    store = AdapterStore(f"sqlite:///{tmp_path / 'a.db'}")
    assert store.latest("u") is None
    b1 = np.ones((16, 4), np.float32)
    r1 = store.save("u", b1, scaling=2.0, training_iterations=50, base_model_version="3",
                    metrics={"loss": 0.6})
    r2 = store.save("u", 2 * b1, scaling=2.0, training_iterations=60, base_model_version="3",
                    metrics={"loss": 0.5}, dtype="float16")
    assert (r1.version, r2.version) == (1, 2)
    assert r1.size_bytes == 16 * 4 * 4 and r2.size_bytes == 16 * 4 * 2
    latest = store.latest("u")
    assert latest is not None and latest.version == 2
    np.testing.assert_array_equal(latest.user_matrix, 2 * b1)
    np.testing.assert_array_equal(store.get("u", 1).user_matrix, b1)
    assert store.versions("u") == [1, 2]
    assert store.stats() == {"adapters": 2, "users": 1, "total_bytes": 384, "mean_bytes": 192.0}
    with pytest.raises(DataError, match="version 7"):
        store.get("u", 7)
    assert store.delete("u") == 2 and store.latest("u") is None
