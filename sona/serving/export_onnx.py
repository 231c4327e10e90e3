"""Export a fitted Recommender as a servable ONNX bundle under ``models/<name>/<version>/``.

Layout (written to a temporary folder, then renamed, so a reader never sees half of it)::

    manifest.json     what is inside, encoder identity, parity results
    scorer.onnx       collaborative scorer (MF factors, item-item weights or popularity)
    content.onnx      content similarity + LoRA score (the user's adapter is an input)
    ranker.onnx       hybrid blend + LoRA boost + exclusions + top-K
    arrays/           config.yaml, arrays.npz, ids.parquet: user inputs, seen items,
                      popularity, content vectors, LoRA base, genres, time-of-day counts
    index/            faiss item vector index (item factors, else content vectors)
    model/            the Recommender directory itself (reference for parity/benchmarks)

Every graph is checked against its Python reference on ``parity_inputs`` random inputs
(max abs diff <= ``atol``, identical top-10 lists) before the bundle is published.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from sona import io
from sona.config import to_dict
from sona.data.interactions import Catalog, Interactions
from sona.errors import DataError
from sona.lora import LoRAConfig, init_base_matrix
from sona.models.base import Recommender
from sona.serving.bundle import (
    MANIFEST,
    ContentConfig,
    content_vectors,
    genre_table,
    time_of_day_popularity,
)
from sona.serving.graphs import (
    ContentScorer,
    FactorScorer,
    HybridRanker,
    ItemItemScorer,
    PopularityScorer,
    TowerScorer,
)
from sona.serving.parity import ParityReport, content_parity, ranker_parity, scorer_parity

log = logging.getLogger(__name__)

#: candidate sources the ranker graph blends, in input order (zoo sources append here)
SOURCES: tuple[str, ...] = ("collaborative", "content_based", "context")


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """How a model is exported."""

    # ONNX opset of every graph
    opset: int = 18
    # "dynamo" (torch.export, the default of torch 2.13) or the legacy "torchscript" exporter
    exporter: Literal["dynamo", "torchscript"] = "dynamo"
    # K of the ranker graph: candidates kept for MMR re-ranking and list cuts
    pool_size: int = 200
    # item content vectors (feeds the preference vector, LoRA and content candidates)
    content: ContentConfig = field(default_factory=ContentConfig)
    # LoRA adapter shape; the shared base matrix A is drawn from lora.seed
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    # faiss index kind of the item vector index ("flat" is exact)
    index_kind: Literal["flat", "hnsw"] = "flat"
    # random inputs per parity check
    parity_inputs: int = 1000
    # max abs difference allowed between ONNX Runtime and Python
    atol: float = 1e-5
    # seed of the parity inputs
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """How one model family becomes a scorer graph (see :func:`scorer_spec`)."""

    kind: Literal["factors", "towers", "item_item", "popularity"]
    module: torch.nn.Module
    input_name: str
    input_dim: int
    reference: Callable[[NDArray[np.float32]], NDArray[np.floating]]
    random_inputs: Callable[[np.random.Generator, int], NDArray[np.float32]]
    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Where the bundle went and how it checked out."""

    path: Path
    manifest: dict[str, Any]
    parity: list[ParityReport]


Draw = Callable[[np.random.Generator, int], NDArray[np.float32]]


def _multi_hot(model: Recommender[Any]) -> Draw:
    density = max(model.seen_.nnz / max(model.seen_.shape[0] * model.seen_.shape[1], 1), 0.01)

    def draw(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
        rows = (rng.random((n, model.seen_.shape[1])) < density).astype(np.float32)
        rows[np.arange(n), rng.integers(0, rows.shape[1], n)] = 1.0  # nobody is empty
        return rows

    return draw


def scorer_spec(model: Recommender[Any]) -> ScorerSpec:
    """The scorer graph and Python reference for ``model``'s family.

    Two-tower models (``network_`` with ``user_proj``/``user_embedding``, cached
    ``item_vectors_``/``item_bias_``), matrix factorisation (``user_factors_``/
    ``item_factors_``, optional ``item_bias_``: ALS, BPR), item-item weights
    (``weights_``: EASE; ``similarity_``: ItemKNN) and popularity (``item_scores_``).

    Raises:
        DataError: the model's family has no ONNX scorer.
    """
    binary = bool(getattr(model.config, "binary", True))
    if hasattr(model, "network_") and hasattr(model, "user_vectors_"):
        return _tower_spec(model)
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        users = np.asarray(model.user_factors_, np.float32)
        items = np.asarray(model.item_factors_, np.float32)
        bias = getattr(model, "item_bias_", None)

        def ref_factors(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            probe = copy.copy(model)
            probe.user_factors_ = rows  # type: ignore[attr-defined]
            return probe._score_users(np.arange(len(rows)))

        std = float(users.std()) or 0.1
        return ScorerSpec(
            "factors", FactorScorer(items, bias), "user_factors", items.shape[1], ref_factors,
            lambda rng, n: rng.normal(0.0, std, (n, items.shape[1])).astype(np.float32),
            {"user_factors": users, "item_factors": items},
            {"alpha": float(getattr(model.config, "alpha", 1.0)),
             "regularization": float(getattr(model.config, "regularization", 0.1)),
             "has_bias": bias is not None})

    def ref_rows(rows: NDArray[np.float32]) -> NDArray[np.floating]:
        probe = copy.copy(model)
        probe.seen_ = sp.csr_matrix(rows)
        return np.asarray(probe._score_users(np.arange(len(rows))))

    n_items = model.seen_.shape[1]
    if hasattr(model, "weights_") or hasattr(model, "similarity_"):
        weights = getattr(model, "weights_", None)
        dense = (np.asarray(weights, np.float32) if weights is not None
                 else model.similarity_.toarray().astype(np.float32))  # type: ignore[attr-defined]
        return ScorerSpec("item_item", ItemItemScorer(dense), "user_items", n_items, ref_rows,
                          _multi_hot(model), {}, {"binary_inputs": binary})
    if hasattr(model, "item_scores_"):
        return ScorerSpec("popularity", PopularityScorer(model.item_scores_), "user_items",
                          n_items, ref_rows, _multi_hot(model), {}, {"binary_inputs": binary})
    raise DataError(f"no ONNX scorer for {type(model).__name__}: it has neither factors, "
                    "item-item weights nor item scores")


def _tower_spec(model: Recommender[Any]) -> ScorerSpec:
    net = model.network_  # type: ignore[attr-defined]
    proj = net.user_proj.weight.detach().numpy().astype(np.float32)
    embeddings = net.user_embedding.weight.detach().numpy().astype(np.float32)
    items = np.asarray(model.item_vectors_, np.float32)  # type: ignore[attr-defined]
    bias = np.asarray(model.item_bias_, np.float32)  # type: ignore[attr-defined]

    def ref_towers(rows: NDArray[np.float32]) -> NDArray[np.floating]:
        probe = copy.copy(model)
        probe.user_vectors_ = rows @ proj.T  # type: ignore[attr-defined]
        return probe._score_users(np.arange(len(rows)))

    std = float(embeddings.std()) or 0.1
    return ScorerSpec(
        "towers", TowerScorer(proj, items, bias), "user_embedding", items.shape[1], ref_towers,
        lambda rng, n: rng.normal(0.0, std, (n, items.shape[1])).astype(np.float32),
        {"user_factors": embeddings, "item_factors": items, "user_proj": proj},
        # new users: an ALS-style least-squares fold-in on the item tower outputs
        {"alpha": 1.0, "regularization": 0.1, "has_bias": True})


def export_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], path: Path, dynamic: dict[str, dict[int, str]],
                 config: ExportConfig) -> None:
    """Export ``module`` to ``path`` with named inputs/outputs and dynamic axes (one file)."""
    module.eval()
    if config.exporter == "torchscript":
        with warnings.catch_warnings():
            # chosen on purpose (~50x faster to export); torch warns it is the legacy path
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, example, str(path), input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic,
                              opset_version=config.opset, dynamo=False)
        return
    dims: dict[str, torch.export.Dim] = {}
    shapes = {name: {axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=1 << 20))
                     for axis, label in dynamic.get(name, {}).items()}
              for name in input_names}
    torch.onnx.export(module, example, str(path), input_names=input_names,
                      output_names=output_names, dynamic_shapes=shapes, external_data=False,
                      opset_version=config.opset, dynamo=True, verbose=False)


def _seen_arrays(matrix: sp.csr_matrix, prefix: str) -> dict[str, NDArray[Any]]:
    m = matrix.tocsr()
    return {f"{prefix}__data": m.data.astype(np.float32), f"{prefix}__indices": m.indices,
            f"{prefix}__indptr": m.indptr}


def export_model(
    model: Recommender[Any],
    out_dir: str | Path,
    *,
    name: str,
    version: str | int,
    catalog: Catalog,
    interactions: Interactions | None = None,
    kg: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    config: ExportConfig = ExportConfig(),
    run_id: str | None = None,
) -> ExportResult:
    """Export ``model`` and its serving data to ``out_dir`` (replaced if it exists).

    Args:
        model: a fitted Recommender.
        out_dir: the bundle folder, conventionally ``models/<name>/<version>``.
        name, version: registry identity recorded in the manifest.
        catalog: item metadata (content vectors, genres).
        interactions: the training log (time-of-day popularity); optional.
        kg, links: knowledge-graph facts for the text encoder; optional.
        run_id: the MLflow run the model came from.

    Raises:
        DataError: unsupported model family, or a graph fails its parity check.
    """
    model._check_fitted()
    final = Path(out_dir)
    tmp = final.with_name(f".{final.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        manifest, reports = _write_bundle(model, tmp, name=name, version=str(version),
                                          catalog=catalog, interactions=interactions, kg=kg,
                                          links=links, config=config, run_id=run_id)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("exported %s v%s to %s", name, version, final)
    return ExportResult(final, manifest, reports)


def _write_bundle(model: Recommender[Any], out: Path, *, name: str, version: str,
                  catalog: Catalog, interactions: Interactions | None, kg: pd.DataFrame | None,
                  links: pd.DataFrame | None, config: ExportConfig,
                  run_id: str | None) -> tuple[dict[str, Any], list[ParityReport]]:
    import onnxruntime as ort

    from sona.search.faiss_index import FaissIndex, FaissIndexConfig

    spec = scorer_spec(model)
    items = model.items_
    n_items = len(items)
    vectors, content_info = content_vectors(catalog, items, config.content, kg=kg, links=links)
    genres, vocab = genre_table(catalog, items)
    base = init_base_matrix(vectors.shape[1], config.lora)
    pool = min(config.pool_size, n_items)
    batch = {0: "batch"}
    export_graph(spec.module, (torch.zeros(2, spec.input_dim),), [spec.input_name], ["scores"],
                 out / "scorer.onnx", {spec.input_name: batch}, config)
    dim, rank = vectors.shape[1], base.shape[0]
    export_graph(ContentScorer(vectors, base, config.lora.scaling),
                 (torch.zeros(2, dim), torch.zeros(2, dim, rank)),
                 ["preference", "lora_b"], ["content", "lora"], out / "content.onnx",
                 {"preference": batch, "lora_b": batch}, config)
    n_src = len(SOURCES)
    export_graph(HybridRanker(pool),
                 (torch.rand(2, n_src, n_items), torch.rand(2, n_src), torch.rand(2, n_items),
                  torch.rand(2, 1), torch.zeros(2, n_items, dtype=torch.bool)),
                 ["sources", "weights", "lora", "lora_boost", "exclude"],
                 ["top_scores", "top_idx"], out / "ranker.onnx",
                 {"sources": {0: "batch", 1: "sources"}, "weights": {0: "batch", 1: "sources"},
                  "lora": batch, "lora_boost": batch, "exclude": batch}, config)

    rng = np.random.default_rng(config.seed)
    sessions = {g: ort.InferenceSession(str(out / f"{g}.onnx"), providers=["CPUExecutionProvider"])
                for g in ("scorer", "content", "ranker")}
    reports = [scorer_parity(sessions["scorer"], spec.input_name,
                             spec.random_inputs(rng, config.parity_inputs), spec.reference)]
    reports += content_parity(sessions["content"], vectors, base, config.lora.scaling,
                              config.parity_inputs, config.seed)
    reports.append(ranker_parity(sessions["ranker"], n_items, n_src, pool,
                                 config.parity_inputs, config.seed))
    failed = [r for r in reports if not r.ok(config.atol)]
    if failed:
        raise DataError("ONNX parity failed: " + "; ".join(
            f"{r.graph}: max|diff|={r.max_abs_diff:.3g}, top-10 identical {r.top10_identical:.1%}"
            for r in failed))

    seen = model.seen_.tocsr()
    popularity = np.asarray((seen > 0).sum(axis=0), np.float32).ravel()
    arrays: dict[str, NDArray[Any]] = {
        **spec.arrays, **_seen_arrays(seen, "seen"), **_seen_arrays(genres, "genres"),
        "popularity": popularity, "item_vectors": vectors, "lora_base": base,
    }
    if interactions is not None:
        arrays["time_of_day"] = time_of_day_popularity(interactions, items)
    cls = type(model)
    manifest: dict[str, Any] = {
        "name": name, "version": version, "created_at": time.time(), "run_id": run_id,
        "model_class": f"{cls.__module__}.{cls.__qualname__}", "scorer_kind": spec.kind,
        "scorer_input": spec.input_name, "scorer_meta": spec.meta,
        "n_users": len(model.users_), "n_items": n_items, "pool_size": pool,
        "sources": list(SOURCES), "content": content_info, "genres": vocab,
        "lora": {**to_dict(config.lora), "scaling": config.lora.scaling},
        "index_vectors": "item_factors" if "item_factors" in spec.arrays else "content",
        "exporter": config.exporter, "opset": config.opset,
        "parity": {"atol": config.atol, "checks": [r.to_dict() for r in reports]},
    }
    io.save_model_dir(out / "arrays", config={"manifest_version": 1}, arrays=arrays,
                      ids={"user": model.users_.ids_array, "item": items.ids_array})
    index_vectors = spec.arrays.get("item_factors", vectors)
    index = FaissIndex(FaissIndexConfig(kind=config.index_kind, metric="cosine"))
    index.add(items.ids_array, np.asarray(index_vectors, np.float32))
    index.save(out / "index")
    model.save(out / "model")
    io.write_json(out / MANIFEST, manifest)
    return manifest, reports


__all__ = [
    "SOURCES", "ExportConfig", "ExportResult", "ScorerSpec", "export_graph", "export_model",
    "scorer_spec",
]
