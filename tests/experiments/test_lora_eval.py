import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Interactions
from sona.data.splits import leave_last_out
from sona.experiments.lora_eval import LoraEvalConfig, run_lora_eval, segment_labels
from sona.models.two_tower import TwoTowerConfig
from sona.lora.two_tier import AdapterTrainingConfig
from sona.testing.fixtures import power_law_frame

BASE = TwoTowerConfig(n_factors=8, n_epochs=15, learning_rate=0.05, user_reg=0.01,
                      item_reg=0.01, seed=2)


@pytest.fixture(scope="module")
def log():
    frame = power_law_frame(n_users=50, n_items=120, n_interactions=2500, seed=3,
                            user_exponent=0.5)
    return Interactions.from_frame(frame)


@pytest.fixture(scope="module")
def users(log):
    ids = log.users.ids_array
    return pd.DataFrame({"user_id": ids, "age": [17, 30, 52] * (len(ids) // 3) +
                         [30] * (len(ids) % 3), "gender": ["M", "F"] * (len(ids) // 2) +
                         ["F"] * (len(ids) % 2), "occupation": "other"})


def test_segment_labels_known_answer():
    users = pd.DataFrame({"user_id": [1, 2, 3, 4], "age": pd.array([7, 18, 44, None],
                                                                    dtype="Int64"),
                          "gender": ["M", "F", "M", "F"], "occupation": ["a", "b", "a", "b"]})
    assert segment_labels(users, "age") == {1: "age=0+", 2: "age=18+", 3: "age=35+",
                                            4: "age=unknown"}
    assert segment_labels(users, "age_gender")[2] == "age=18+|gender=F"
    assert segment_labels(users, "occupation")[3] == "occupation=a"
    assert segment_labels(users, "none") == {}
    with pytest.raises(ValueError, match="segment_by must be"):
        segment_labels(users, "zip")


def test_run_lora_eval_rows_ci_and_storage(log, users, tmp_path):
    config = LoraEvalConfig(test_events=5, adapt_events=10, segment_by="age", refit=True,
                            n_boot=200, fp16_sample=3, base=BASE)
    adapter = AdapterTrainingConfig(rank=2, alpha=4, n_steps=5)
    result = run_lora_eval(log, users, config, tmp_path, adapter=adapter)
    proto = result.protocol
    # the split partitions the log: base + window + test
    rest, test = leave_last_out(log, 5)[:2]
    assert proto["test_interactions"] == len(test)
    assert proto["base_train_interactions"] + proto["window_interactions"] == len(rest)
    assert set(result.ndcg) == {"base", "base+segment", "base+segment+user",
                                "refit (base+window)"}
    n = proto["users_evaluated"]
    assert n > 5 and all(len(v) == n for v in result.per_user.values())
    assert proto["segments"] == 3
    for c in result.comparisons:
        assert c["b"] == "base" and c["n"] == n  # every evaluated user has test items
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"]
        assert c["mean_a"] == pytest.approx(result.ndcg[c["a"]], abs=1e-9)
    # rank 2 on 8 factors: A (2, 8) + B (8, 2) = 32 floats
    storage = result.storage
    assert storage["parameters_per_adapter"] == 32
    assert storage["sql"]["bytes_float32"] == 128 and storage["sql"]["bytes_float16"] == 64
    assert storage["directory"]["bytes_float32"] > 128  # + safetensors header
    assert storage["sql"]["fp16_max_abs_error"] < 1e-3
    assert storage["sql"]["stats"]["adapters"] == n + 3
    for key in ("user_train_ms_p50", "user_train_ms_p95", "load_ms_directory_p50",
                "load_ms_sql_p95", "base_fit_s", "refit_s"):
        assert result.timings[key] > 0
    assert np.isfinite(result.adapter_loss["first"])
    assert "per_user" not in result.to_dict()


def test_window_below_min_events_raises(log, tmp_path):
    with pytest.raises(ValueError, match="adapt_events=5 is below the adapter's min_events=10"):
        run_lora_eval(log, None, LoraEvalConfig(adapt_events=5, base=BASE), tmp_path)
