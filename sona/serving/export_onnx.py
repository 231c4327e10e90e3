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
(max abs diff <= ``atol``, top-10 lists identical up to ties within ``atol``) before the
bundle is published.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
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
from sona.models.export import ScorerExport, scorer_export
from sona.serving.bundle import (
    MANIFEST,
    ContentConfig,
    content_vectors,
    genre_table,
    time_of_day_popularity,
)
from sona.serving.graphs import ContentScorer, HybridRanker
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
class ExportResult:
    """Where the bundle went and how it checked out."""

    path: Path
    manifest: dict[str, Any]
    parity: list[ParityReport]


def scorer_spec(model: Recommender[Any]) -> ScorerExport:
    """The scorer graph, Python reference and serving arrays ``model`` declares.

    A thin call of :func:`sona.models.export.scorer_export`: each model says how it
    exports (``export_scorer``); nothing here looks inside a model.

    Raises:
        NotExportableError: the model cannot be one scorer graph (the message says why).
        NotFittedError: the model is not fitted.
    """
    return scorer_export(model)


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
        NotExportableError: the model cannot be one scorer graph (nothing is written).
        DataError: a graph fails its parity check.
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
                             spec.random_inputs(rng, config.parity_inputs), spec.reference,
                             atol=config.atol)]
    reports += content_parity(sessions["content"], vectors, base, config.lora.scaling,
                              config.parity_inputs, config.seed, atol=config.atol)
    reports.append(ranker_parity(sessions["ranker"], n_items, n_src, pool,
                                 config.parity_inputs, config.seed, atol=config.atol))
    failed = [r for r in reports if not r.ok(config.atol)]
    if failed:
        raise DataError("ONNX parity failed: " + "; ".join(
            f"{r.graph}: max|diff|={r.max_abs_diff:.3g}, top-10 agree (ties within "
            f"{r.atol:g}) {r.top10_identical:.1%}, exact {r.top10_exact:.1%}"
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
    "SOURCES", "ExportConfig", "ExportResult", "export_graph", "export_model", "scorer_spec",
]
