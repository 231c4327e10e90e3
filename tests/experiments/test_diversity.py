from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sona.data.splits import make_split
from sona.errors import ConfigError
from sona.experiments.runner import load_dataset, run_experiment, with_tracking
from sona.experiments.spec import ExperimentConfig
from sona.metrics import intra_list_diversity


def test_diversity_column_and_mmr_curve(tmp_path: Path,
                                        make_tiny_config: Callable[..., ExperimentConfig]):
    cfg = with_tracking(make_tiny_config(
        tmp_path, store_template=None, metrics=["ndcg", "precision", "diversity"],
        diversity={"lambdas": [1.0, 0.5, 0.0], "pool": 30}), False)
    result = run_experiment(cfg, progress=False)
    top = result.rows[0]
    assert top.metrics["diversity"] is not None and 0.0 < top.metrics["diversity"] <= 1.0
    # the ILD column is intra_list_diversity over the training matrix's item columns
    model = result.model_result(top.name)
    recs = model.fitted.recommend(model.user_ids, k=10)
    train = make_split(load_dataset(cfg.dataset)[0], cfg.split).train
    idx = train.items.numbers(recs.ids.ravel()).reshape(recs.ids.shape)
    vectors = (train.matrix("weight").T > 0).astype(float)
    np.testing.assert_allclose(model.per_query["diversity"], intra_list_diversity(idx, vectors))
    curve = result.diversity_curve
    assert result.diversity_curve_model == top.name
    assert [p["lambda"] for p in curve] == [1.0, 0.5, 0.0]
    # λ = 1 keeps the model's own order: same nDCG as its leaderboard row
    assert curve[0]["ndcg"] == pytest.approx(top.metrics["ndcg"])
    assert curve[-1]["diversity"] >= curve[0]["diversity"]
    assert result.files["diversity_png"].read_bytes().startswith(b"\x89PNG")
    md = result.files["md"].read_text()
    assert "diversity@10" in md and "Accuracy vs diversity" in md


def test_diversity_config_is_checked(tmp_path: Path,
                                     make_tiny_config: Callable[..., ExperimentConfig]):
    with pytest.raises(ConfigError, match="needs the ml-100k catalog"):
        make_tiny_config(tmp_path, diversity={"vectors": "genres"})
    with pytest.raises(ConfigError, match="curve_model"):
        make_tiny_config(tmp_path, diversity={"curve_model": "nope"})
    with pytest.raises(ConfigError, match="lambdas"):
        make_tiny_config(tmp_path, diversity={"lambdas": [1.5]})
