"""ONNX export: parity with the Python models on >= 1000 random inputs (atol 1e-5, top-10
lists identical up to ties), bundle layout, the served pipeline around a plain model ranks
exactly as the model, and that a wrong graph is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch
from serving_fixtures import FAST_EXPORT

from sona.models.als import ALS, ALSConfig
from sona.models.base import Recommender
from sona.models.bpr import BPR, BPRConfig
from sona.models.ease import EASE, EASEConfig
from sona.models.item_knn import ItemKNN, ItemKNNConfig
from sona.models.onnx_graphs import FactorScorer
from sona.models.popularity import Popularity
from sona.models.two_tower import TwoTower, TwoTowerConfig
from sona.pipeline import Pipeline
from sona.ranking.topk import topk
from sona.serving.export_onnx import (
    ExportConfig,
    export_graph,
    export_model,
    read_manifest,
    scorer_spec,
)
from sona.serving.model_store import load_bundle
from sona.serving.parity import content_parity, scorer_parity, topk_agreement
from sona.testing.serving import ServingData

ATOL = 1e-5
N_INPUTS = 1000

MODELS = {
    "ease": lambda: EASE(EASEConfig(l2=10.0)),
    "itemknn": lambda: ItemKNN(ItemKNNConfig(n_neighbors=20)),
    "als": lambda: ALS(ALSConfig(n_factors=16, n_iter=5, n_threads=1)),
    "bpr": lambda: BPR(BPRConfig(n_factors=16, n_threads=1)),
    "popularity": lambda: Popularity(),
    "two_tower": lambda: TwoTower(TwoTowerConfig(n_factors=16, n_epochs=5, n_threads=1)),
}


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bundle_parity_per_model(name: str, serving_data: ServingData, tmp_path) -> None:
    model = MODELS[name]().fit(serving_data.data)
    result = export_model(model, tmp_path / "b", name="m", version=1,
                          catalog=serving_data.catalog, interactions=serving_data.data,
                          config=FAST_EXPORT)
    checks = {c["graph"]: c for c in result.manifest["parity"]["checks"]}
    assert set(checks) == {"collaborative", "content", "lora"}
    for check in checks.values():
        assert check["n_inputs"] >= N_INPUTS
        assert check["max_abs_diff"] <= ATOL
        assert check["top10_identical"] == 1.0

    # independently of the export's own check: real users, ONNX vs Recommender scores
    session = _session(result.path / "collaborative.onnx")
    spec = scorer_spec(model)
    users = np.arange(len(model.users_))
    if spec.kind in ("factors", "towers"):
        inputs = spec.arrays["user_factors"][users]
    else:
        inputs = (model.seen_[users] > 0).astype(np.float32).toarray()
    (onnx_scores,) = session.run(None, {spec.input_name: inputs})
    python_scores = np.asarray(model._score_users(users), np.float64)
    np.testing.assert_allclose(onnx_scores, python_scores, atol=ATOL)
    masked = np.where(model.seen_.toarray() > 0, -np.inf, python_scores)
    top_onnx, _ = topk(onnx_scores, 10, exclude=model.seen_)
    assert topk_agreement(top_onnx, masked, ATOL).all()
    # the served pipeline around the model ranks as the model does, up to ties within atol,
    # for every user above the cold-start threshold (SPEC §2.8 gives the others trending)
    pipeline = load_bundle(result.path).pipeline
    warm = np.diff(model.seen_.indptr) > pipeline.config.cold_start_max_events
    served = pipeline.recommend(model.users_.ids_array[warm], 10)
    served_idx = model.items_.numbers(served.ids.ravel()).reshape(-1, 10)
    assert warm.sum() > 10 and topk_agreement(served_idx, masked[warm], ATOL).all()


def test_scorer_parity_on_1000_random_users(serving_data: ServingData, tmp_path) -> None:
    model = MODELS["als"]().fit(serving_data.data)
    spec = scorer_spec(model)
    out = tmp_path / "scorer.onnx"
    export_graph(spec.module, (torch.zeros(2, spec.input_dim),), [spec.input_name],
                 ["scores"], out, {spec.input_name: {0: "batch"}}, FAST_EXPORT)
    inputs = spec.random_inputs(np.random.default_rng(7), N_INPUTS)
    report = scorer_parity(_session(out), spec.input_name, inputs, spec.reference)
    assert report.n_inputs == N_INPUTS
    assert report.max_abs_diff <= ATOL and report.top10_identical == 1.0


def test_parity_catches_a_wrong_graph(serving_data: ServingData, tmp_path) -> None:
    model = MODELS["bpr"]().fit(serving_data.data)
    spec = scorer_spec(model)
    # the bias dropped: the kind of silent export bug parity must catch
    broken = FactorScorer(model.item_factors_, None)  # type: ignore[attr-defined]
    out = tmp_path / "broken.onnx"
    export_graph(broken, (torch.zeros(2, spec.input_dim),), [spec.input_name], ["scores"], out,
                 {spec.input_name: {0: "batch"}}, FAST_EXPORT)
    inputs = spec.random_inputs(np.random.default_rng(0), N_INPUTS)
    report = scorer_parity(_session(out), spec.input_name, inputs, spec.reference)
    assert report.max_abs_diff > 1e-3 and not report.ok(ATOL)


def test_content_graph_matches_numpy(serving_data: ServingData, tmp_path) -> None:
    model = MODELS["ease"]().fit(serving_data.data)
    result = export_model(model, tmp_path / "b", name="m", version=1,
                          catalog=serving_data.catalog, interactions=serving_data.data,
                          config=FAST_EXPORT)
    features = Recommender.load(result.path / "pipeline").features_  # type: ignore[attr-defined]
    scaling = result.manifest["lora"]["scaling"]
    reports = content_parity(_session(result.path / "content.onnx"), features.vectors,
                             features.lora_base, scaling, N_INPUTS, seed=11)
    for report in reports:
        assert report.ok(ATOL), report


def test_bundle_layout_and_manifest(serving_data: ServingData, tmp_path) -> None:
    model = MODELS["als"]().fit(serving_data.data)
    out = tmp_path / "models" / "recs" / "7"
    export_model(model, out, name="recs", version=7, catalog=serving_data.catalog,
                 interactions=serving_data.data, config=FAST_EXPORT, run_id="abc")
    assert sorted(p.name for p in out.iterdir()) == [
        "collaborative.onnx", "content.onnx", "index", "manifest.json", "pipeline"]
    assert not list(out.parent.glob(".*tmp*"))  # the temporary folder was renamed away
    manifest = read_manifest(out)
    assert manifest["version"] == "7" and manifest["run_id"] == "abc"
    assert manifest["graphs"]["collaborative"]["kind"] == "factors"
    assert manifest["index_vectors"] == "item_factors"
    assert manifest["weights"] == {"collaborative": 1.0, "content_based": 0.0,
                                   "graph_based": 0.0, "context": 0.0}
    pipeline = Recommender.load(out / "pipeline")
    assert isinstance(pipeline, Pipeline)
    np.testing.assert_array_equal(pipeline.items_.ids_array, model.items_.ids_array)
    stats = pipeline.features_.context
    assert stats.hourly.shape == (len(model.items_), 24)
    np.testing.assert_array_equal(
        pipeline.models_.models[0].item_factors_, model.item_factors_)  # type: ignore[attr-defined]


def test_plain_model_without_interactions_is_refused(serving_data: ServingData,
                                                     tmp_path) -> None:
    from sona.errors import DataError

    model = MODELS["als"]().fit(serving_data.data)
    with pytest.raises(DataError, match="needs the interactions it was fitted on"):
        export_model(model, tmp_path / "b", name="m", version=1,
                     catalog=serving_data.catalog, config=FAST_EXPORT)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_dynamo_exporter_parity(serving_data: ServingData, tmp_path) -> None:
    """The default torch.export-based exporter (slow: ~10 s per bundle on 2 cores)."""
    model = MODELS["ease"]().fit(serving_data.data)
    config = dataclasses.replace(FAST_EXPORT, exporter="dynamo")
    result = export_model(model, tmp_path / "b", name="m", version=1,
                          catalog=serving_data.catalog, interactions=serving_data.data,
                          config=config)
    assert result.manifest["exporter"] == "dynamo"
    assert all(c["max_abs_diff"] <= ATOL and c["top10_identical"] == 1.0
               for c in result.manifest["parity"]["checks"])


def test_export_config_defaults_are_the_issue_values() -> None:
    config = ExportConfig()
    assert config.parity_inputs >= N_INPUTS and config.atol == ATOL
    assert config.exporter == "dynamo"
