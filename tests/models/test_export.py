"""Every registered model says how it exports (issue 10, STYLE.md §11).

For each class in :data:`sona.models.registry.MODELS`: either ``export_scorer`` gives a graph
whose ONNX Runtime scores match the model on 1000 random inputs (max|diff| <= 1e-5, top-10
lists in tie-aware agreement), or it raises :class:`NotExportableError` naming the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from sona.data.interactions import Catalog, Interactions
from sona.errors import NotFittedError
from sona.models.als import ALS, ALSConfig
from sona.models.base import Recommender
from sona.models.bpr import BPR, BPRConfig
from sona.models.cold_start import ColdStart, ColdStartConfig
from sona.models.content import ContentBased, ContentConfig
from sona.models.ease import EASE, EASEConfig
from sona.models.export import NotExportableError, ScorerExport, scorer_export
from sona.models.generators import GeneratorSpec
from sona.models.graph_walk import GraphWalk, GraphWalkConfig
from sona.models.hybrid import Hybrid, HybridConfig
from sona.models.item_knn import ItemKNN, ItemKNNConfig
from sona.models.lightgcn import LightGCN, LightGCNConfig
from sona.models.popularity import Popularity
from sona.models.ranker import Ranker, RankerConfig
from sona.models.registry import MODELS
from sona.models.side import ItemSideData
from sona.models.two_tower import TwoTower, TwoTowerConfig
from sona.serving.export_onnx import ExportConfig, export_graph
from sona.serving.parity import scorer_parity
from sona.testing.fixtures import random_interactions

ATOL = 1e-5
N_INPUTS = 1000
FAST = ExportConfig(exporter="torchscript")
GENS = [GeneratorSpec("ease", "ease", {"l2": 5.0}), GeneratorSpec("pop", "popularity")]


@pytest.fixture(scope="module")
def data() -> Interactions:
    return random_interactions(n_users=60, n_items=80, n_interactions=900, seed=4)


def _catalog(data: Interactions) -> ItemSideData:
    rng = np.random.default_rng(0)
    words = ["space", "ranch", "ghost", "wedding", "heist", "robot", "desert", "dance"]
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
    rows = [{"item_id": item, "title": " ".join(rng.choice(words, 2, replace=False)),
             "year": 1990 + i % 10, "genres": tuple(rng.choice(genres, 2, replace=False))}
            for i, item in enumerate(data.items.ids_array.tolist())]
    return ItemSideData(Catalog.from_frame(pd.DataFrame(rows)))


@dataclass(frozen=True)
class Case:
    """How to build one registered model, and what its export must be."""

    make: Callable[[Interactions], Recommender[Any]]
    kind: str | None  # the scorer graph kind, or None: NotExportableError


CASES: dict[str, Case] = {
    "popularity": Case(lambda d: Popularity(), "popularity"),
    "ease": Case(lambda d: EASE(EASEConfig(l2=10.0)), "item_item"),
    "itemknn": Case(lambda d: ItemKNN(ItemKNNConfig(n_neighbors=20)), "item_item"),
    "als": Case(lambda d: ALS(ALSConfig(n_factors=8, n_iter=3, n_threads=1)), "factors"),
    "bpr": Case(lambda d: BPR(BPRConfig(n_factors=8, n_iter=5)), "factors"),
    "two_tower": Case(lambda d: TwoTower(TwoTowerConfig(n_factors=8, n_epochs=5)), "towers"),
    "lightgcn": Case(lambda d: LightGCN(LightGCNConfig(n_factors=8, n_layers=2, epochs=2,
                                                       batch_size=256)), "factors"),
    "content": Case(lambda d: ContentBased(ContentConfig(
        encoder="tfidf", scoring="profile", tfidf_components=8, side_source=None,
        cache_dir=None), side=_catalog(d)), "factors"),
    "hybrid": Case(lambda d: Hybrid(HybridConfig(generators=GENS)), None),
    "ranker": Case(lambda d: Ranker(RankerConfig(generators=GENS, side_source=None)), None),
    "graph_walk": Case(lambda d: GraphWalk(GraphWalkConfig(side_source=None)), None),
    "cold_start": Case(lambda d: ColdStart(ColdStartConfig(side_source=None)), None),
    # the served pipeline (sona.pipeline) is several graphs, exported by its own bundle code
    "pipeline": Case(lambda d: MODELS["pipeline"](), None),
}


def test_every_registered_model_has_a_case() -> None:
    missing = set(MODELS) - set(CASES)
    assert not missing, f"add {sorted(missing)} to CASES: how does it export?"
    for name in MODELS:
        assert isinstance(CASES[name].make(random_interactions(5, 5, 10)), MODELS[name])


def _onnx_parity(export: ScorerExport, tmp_path: Path) -> tuple[float, float]:
    path = tmp_path / "scorer.onnx"
    export_graph(export.module, (torch.zeros(2, export.input_dim),), [export.input_name],
                 ["scores"], path, {export.input_name: {0: "batch"}}, FAST)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = export.random_inputs(np.random.default_rng(0), N_INPUTS)
    assert inputs.shape == (N_INPUTS, export.input_dim) and inputs.dtype == np.float32
    report = scorer_parity(session, export.input_name, inputs, export.reference, atol=ATOL)
    assert report.n_inputs == N_INPUTS
    return report.max_abs_diff, report.top10_identical


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_exports_with_parity_or_says_why_not(name: str, data: Interactions,
                                                   tmp_path: Path) -> None:
    case = CASES[name]
    model = case.make(data)
    cls = type(model).__name__
    if case.kind is None:
        with pytest.raises(NotExportableError, match=f"^{cls} cannot be exported to ONNX: "):
            scorer_export(model)
        return
    with pytest.raises(NotFittedError):
        scorer_export(model)
    model.fit(data)
    export = scorer_export(model)
    assert export.kind == case.kind
    # the reference is the model itself: real users' inputs give its own scores
    users = np.arange(len(model.users_))
    if export.kind in ("factors", "towers"):
        real = export.arrays["user_factors"][users]
    else:
        real = (model.seen_[users] > 0).astype(np.float32).toarray()
    np.testing.assert_allclose(export.reference(real), model._score_users(users), atol=1e-6)
    max_diff, agree = _onnx_parity(export, tmp_path)
    assert max_diff <= ATOL
    assert agree == 1.0


def test_content_seeds_scoring_says_why_not(data: Interactions) -> None:
    model = ContentBased(ContentConfig(encoder="tfidf", scoring="seeds", side_source=None,
                                       cache_dir=None), side=_catalog(data))
    with pytest.raises(NotExportableError, match="scoring='seeds'") as err:
        scorer_export(model.fit(data))
    assert err.value.model_class == "ContentBased"


def test_hybrid_reason_counts_its_generators() -> None:
    with pytest.raises(NotExportableError, match="Hybrid blends 2 generators per user"):
        scorer_export(Hybrid(HybridConfig(generators=GENS)))


def test_pipeline_exports_as_a_bundle_not_one_scorer() -> None:
    # by design, fitted or not: export_scorer needs no fit, so this stays fast
    with pytest.raises(NotExportableError, match="^Pipeline cannot be exported to ONNX: a "
                       "pipeline runs several graphs") as err:
        scorer_export(MODELS["pipeline"]())
    assert err.value.model_class == "Pipeline"
    assert "sona.serving.export_onnx.export_model" in err.value.reason


def test_an_object_without_the_protocol_is_not_exportable() -> None:
    class Legacy:
        """A model written before the protocol."""

    with pytest.raises(NotExportableError,
                       match="^Legacy cannot be exported to ONNX: it does not implement"):
        scorer_export(Legacy())


def test_bpr_export_carries_the_item_bias(data: Interactions) -> None:
    model = BPR(BPRConfig(n_factors=8, n_iter=5)).fit(data)
    export = scorer_export(model)
    assert export.meta == {"alpha": 1.0, "regularization": model.config.regularization,
                           "has_bias": True}
    zeros = np.zeros((1, export.input_dim), np.float32)
    with torch.no_grad():
        graph = export.module(torch.from_numpy(zeros)).numpy()[0]
    np.testing.assert_allclose(graph, model.item_bias_, atol=1e-7)


def _rows_across_splits(booster: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` float32 feature rows spread over every split of ``booster`` (both sides).

    Numerical features are drawn uniformly from one unit below the smallest threshold to
    one above the largest; categorical ones (``==`` splits) as integer codes seen in splits
    plus one unseen code.
    """
    splits = booster.trees_to_dataframe()
    splits = splits[splits["split_feature"].notna()]
    names = booster.feature_name()
    x = rng.normal(0.0, 1.0, (n, len(names)))
    for j, name in enumerate(names):
        mine = splits[splits["split_feature"] == name]
        if mine.empty:
            continue
        if (mine["decision_type"] == "==").any():
            codes = {int(c) for t in mine["threshold"] for c in str(t).split("||")}
            x[:, j] = rng.choice(sorted(codes | {max(codes) + 1}), n)
        else:
            low, high = mine["threshold"].astype(float).agg(["min", "max"])
            x[:, j] = rng.uniform(low - 1.0, high + 1.0, n)
    return x.astype(np.float32)


def test_ranker_booster_exports_to_onnx_with_parity() -> None:
    data = random_interactions(seed=1)
    model = Ranker(RankerConfig(generators=GENS, side_source=None, context_features=True,
                                n_candidates=15, n_estimators=15, min_data_in_leaf=20,
                                num_leaves=4)).fit(data)
    proto = model.export_booster()
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["scores"]
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = _rows_across_splits(model.booster_, N_INPUTS, np.random.default_rng(0))
    assert x.shape == (N_INPUTS, len(model.feature_names_))
    (onnx_scores,) = session.run(None, {"features": x})
    python_scores = model.booster_.predict(x.astype(np.float64))
    assert onnx_scores.shape == (N_INPUTS, 1)
    assert np.ptp(python_scores) > 0.1  # the rows reach different leaves
    assert np.max(np.abs(onnx_scores[:, 0] - python_scores)) <= ATOL
