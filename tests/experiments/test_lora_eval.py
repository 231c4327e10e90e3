import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Interactions
from sona.data.splits import leave_last_out
from sona.experiments.lora_eval import (
    ALS_FOLD_IN_ROW,
    ALS_ROW,
    ALS_WINDOW_ONLY_ROW,
    PIPELINE_LORA_ROW,
    PIPELINE_ROW,
    LoraEvalConfig,
    als_rows,
    compare_with_strongest,
    lora_decision,
    pipeline_rows,
    run_lora_eval,
    segment_labels,
    train_pipeline_adapter,
    window_events,
)
from sona.lora import LoRAConfig
from sona.lora.two_tier import AdapterTrainingConfig
from sona.models.als import ALS, ALSConfig
from sona.models.generators import GeneratorSpec
from sona.models.two_tower import TwoTowerConfig
from sona.pipeline import ContentConfig, Pipeline, PipelineConfig
from sona.testing.fixtures import power_law_frame

BASE = TwoTowerConfig(n_factors=8, n_epochs=15, learning_rate=0.05, user_reg=0.01,
                      item_reg=0.01, seed=2)
SMALL_ALS = ALSConfig(n_factors=8, regularization=1.0, n_iter=5, alpha=4.0, n_threads=1)
# no catalog, no graph source, weights and λ fixed: no validation tuning, fast to fit;
# a cold learning rate for every user so adapters visibly move
SMALL_PIPELINE = PipelineConfig(
    collaborative=GeneratorSpec("collaborative", "als", {"n_factors": 8, "regularization": 1.0,
                                                         "n_iter": 5, "n_threads": 1}),
    graph=None, content=ContentConfig(source="interactions", n_components=8),
    weights={"collaborative": 0.7, "content_based": 0.3}, mmr_lambda=1.0,
    lora=LoRAConfig(rank=2, alpha=4.0, cold_interactions=10_000, cold_lr=0.5),
    lora_boost=1.0, side_source=None)


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
                            n_boot=200, fp16_sample=3, base=BASE, als_rows=False,
                            pipeline_rows=False)
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


# --- strong baselines: ALS fold-in and the served pipeline -----------------------------


@pytest.fixture(scope="module")
def parts(log):
    rest, test = leave_last_out(log, 5)[:2]
    base, window = leave_last_out(rest, 10)[:2]
    return base, window, test


def _watched(base, window, user):
    frame_b, frame_w = base.frame, window.frame
    return set(frame_b.loc[frame_b["user_id"] == user, "item_id"]) | \
        set(frame_w.loc[frame_w["user_id"] == user, "item_id"])


def test_window_events_known_answer():
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 12],
                          "rating": [4.0, np.nan, 2.0], "timestamp": [5.0, 3.0, 1.0]})
    events = window_events(Interactions.from_frame(frame))
    assert [e.content_id for e in events[1]] == [11, 10]  # oldest first
    assert [e.rating for e in events[1]] == [None, 4]
    assert events[2][0].completion_rate == 1.0 and events[2][0].timestamp == 1.0
    assert not events[2][0].is_rewatch and not events[2][0].dismissed


def test_als_fold_in_rows_exclude_watched_and_use_the_window(parts):
    from sona.pipeline.sources import ModelSource

    base, window, _ = parts
    model = ALS(SMALL_ALS).fit(base)
    users = sorted(set(window.users.ids_array.tolist()))[:10]
    items = {u: g.tolist() for u, g in window.frame.groupby("user_id")["item_id"]}
    rows = als_rows(model, users, items, k=5)
    assert set(rows) == {ALS_ROW, ALS_FOLD_IN_ROW, ALS_WINDOW_ONLY_ROW}
    for recs in rows.values():
        assert recs.ids.shape == (len(users), 5)
        for u, listed in zip(users, recs.ids.tolist(), strict=True):
            assert not set(listed) & _watched(base, window, u)
    # the fold-in row is the ALS user step over history + window: recompute one user's list
    u = users[0]
    source = ModelSource("collaborative", model)
    watched = model.items_.numbers(sorted(_watched(base, window, u)), missing="negative")
    scores = source.fold_in(np.sort(watched[watched >= 0])) @ model.item_factors_.T
    scores[watched[watched >= 0]] = -np.inf
    expected = model.items_.ids(np.argsort(-scores, kind="stable")[:5])
    assert rows[ALS_FOLD_IN_ROW].ids[0].tolist() == expected.tolist()
    # window only: the same step over the window items alone
    own = model.items_.numbers(items[u], missing="negative")
    scores = source.fold_in(np.unique(own[own >= 0])) @ model.item_factors_.T
    scores[watched[watched >= 0]] = -np.inf
    expected = model.items_.ids(np.argsort(-scores, kind="stable")[:5])
    assert rows[ALS_WINDOW_ONLY_ROW].ids[0].tolist() == expected.tolist()
    # folding the window in changes what ALS recommends
    assert (rows[ALS_ROW].ids != rows[ALS_FOLD_IN_ROW].ids).any()


def test_pipeline_rows_with_and_without_lora(parts):
    base, window, _ = parts
    pipeline = Pipeline(SMALL_PIPELINE).fit(base)
    events = window_events(window)
    users = [u for u in sorted(events) if len(events[u]) >= 10][:8]
    recs, info = pipeline_rows(pipeline, users, events, k=5)
    assert set(recs) == {PIPELINE_ROW, PIPELINE_LORA_ROW}
    for r in recs.values():
        for u, listed in zip(users, r.ids.tolist(), strict=True):
            assert not set(listed) & _watched(base, window, u)
    assert info["users_with_adapter"] == len(users)
    assert info["lora_term_abs_max"] > 0  # the adapters reach the LoRA lists
    assert 0.0 <= info["users_list_changed"] <= 1.0
    assert info["weights"]["collaborative"] == pytest.approx(0.7)
    # without LoRA the lists are the pipeline's own for a state with those events
    u = users[0]
    state = pipeline.state(u, events=events[u], now=events[u][-1].timestamp)
    own = pipeline.rank([state], 5).idx[0]
    assert recs[PIPELINE_ROW].ids[0].tolist() == pipeline.items_.ids(own).tolist()
    # the adapter is what the service trains: (D, r), and none below min_events
    trained = train_pipeline_adapter(pipeline, state, events[u])
    assert trained.user_matrix.shape == (pipeline.features_.dim, 2)
    assert train_pipeline_adapter(pipeline, state, events[u][:9]) is None


def test_strongest_baseline_and_lora_decision_known_answer():
    rows = {"base": np.array([0.1, 0.2, 0.3, 0.4]), ALS_FOLD_IN_ROW: np.array([0.5, 0.5, 0.6,
                                                                               0.6]),
            "base+user": np.array([0.9, 0.9, 0.9, 0.9]),
            PIPELINE_ROW: np.array([0.4, 0.4, 0.5, 0.5]),
            PIPELINE_LORA_ROW: np.array([0.4, 0.4, 0.5, 0.5])}
    strongest, comps = compare_with_strongest(rows, n_boot=200)
    assert strongest == ALS_FOLD_IN_ROW  # adapter rows never count as the baseline
    assert {c["a"] for c in comps} == set(rows) - {ALS_FOLD_IN_ROW}
    assert all(c["b"] == ALS_FOLD_IN_ROW for c in comps)
    decision = lora_decision(rows, n_boot=200)
    assert decision["comparison"]["mean_diff"] == 0.0
    assert decision["keep_lora_on_by_default"] is False  # a tie keeps nothing on
    better = dict(rows, **{PIPELINE_LORA_ROW: rows[PIPELINE_ROW] + 0.1})
    assert lora_decision(better, n_boot=200)["keep_lora_on_by_default"] is True
    assert lora_decision({"base": rows["base"]}, n_boot=200) == {}


def test_run_lora_eval_with_every_row(log, tmp_path):
    config = LoraEvalConfig(test_events=5, adapt_events=10, segment_by="none", refit=False,
                            n_boot=200, fp16_sample=2, max_users=10, base=BASE,
                            als=SMALL_ALS, pipeline=SMALL_PIPELINE)
    result = run_lora_eval(log, None, config, tmp_path,
                           adapter=AdapterTrainingConfig(rank=2, alpha=4, n_steps=3))
    assert set(result.ndcg) == {"base", "base+user", ALS_ROW, ALS_FOLD_IN_ROW,
                                ALS_WINDOW_ONLY_ROW, PIPELINE_ROW, PIPELINE_LORA_ROW}
    n = result.protocol["users_evaluated"]
    assert n == 10 and all(len(v) == n for v in result.per_user.values())
    baselines = ["base", ALS_ROW, ALS_FOLD_IN_ROW, ALS_WINDOW_ONLY_ROW, PIPELINE_ROW]
    assert result.strongest_baseline == max(baselines, key=lambda r: result.ndcg[r])
    assert len(result.vs_strongest) == len(result.ndcg) - 1
    for c in result.vs_strongest:
        assert c["mean_a"] == pytest.approx(result.ndcg[c["a"]], abs=1e-9)
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"]
    decision = result.lora_in_pipeline
    assert decision["keep_lora_on_by_default"] == (decision["comparison"]["ci_low"] > 0)
    out = result.to_dict()
    assert {"strongest_baseline", "vs_strongest", "lora_in_pipeline",
            "pipeline_info"} <= set(out)
    assert out["protocol"]["pipeline"]["graph"] is None
