"""Export a fitted Recommender as a servable ONNX bundle under ``models/<name>/<version>/``.

What is served is a :class:`~sona.pipeline.Pipeline`: a pipeline champion as it is, any
other model as the pipeline's only ranking source (:meth:`Pipeline.around`, which ranks
exactly as the model does). Layout (written to a temporary folder, then renamed, so a reader
never sees half of it)::

    manifest.json          what is inside, graphs, encoder identity, parity results
    <source>.onnx          one scorer graph per model source (collaborative, graph_based),
                           declared by the model itself (``export_scorer``)
    content.onnx           content similarity + LoRA score (the user's adapter is an input)
    pipeline/              the Pipeline directory (config.yaml, arrays.npz, ids.parquet):
                           weights, MMR λ, features, the sources' learned arrays
    index/                 faiss item vector index for similar items

The service loads ``pipeline/`` and runs its graphs in ONNX Runtime; everything else (blend,
LoRA boost, context, cold start, MMR) is the pipeline's own code. Every graph is checked
against its Python reference on ``parity_inputs`` random inputs (max abs diff <= ``atol``,
top-10 lists identical up to ties within ``atol``) before the bundle is published.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from sona import io
from sona.config import to_dict
from sona.data.interactions import Catalog, Interactions
from sona.errors import DataError
from sona.lora import LoRAConfig
from sona.models.base import Recommender
from sona.models.export import ScorerExport, scorer_export
from sona.models.side import ItemSideData
from sona.pipeline import ContentConfig, Pipeline, graphs
from sona.pipeline.graphs import OnnxConfig
from sona.serving.parity import ParityReport, compare_scores, content_parity

log = logging.getLogger(__name__)

#: file naming what a bundle holds
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """How a model is exported."""

    # ONNX opset of the graphs of a pipeline served around a plain model (a pipeline's own
    # graphs were exported when it was fitted, with its onnx config)
    opset: int = 18
    # exporter of those graphs: "dynamo" (torch.export, torch 2.13's default) or "torchscript"
    exporter: Literal["dynamo", "torchscript"] = "dynamo"
    # content vectors of the pipeline served around a plain model (a pipeline has its own)
    content: ContentConfig = field(default_factory=ContentConfig)
    # LoRA adapter shape of the pipeline served around a plain model (seed draws A)
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
    graphs.export_graph(module, example, input_names, output_names, path, dynamic,
                        exporter=config.exporter, opset=config.opset)


def export_model(
    model: Recommender[Any],
    out_dir: str | Path,
    *,
    name: str,
    version: str | int,
    catalog: Catalog | None = None,
    interactions: Interactions | None = None,
    kg: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    config: ExportConfig = ExportConfig(),
    run_id: str | None = None,
) -> ExportResult:
    """Export ``model`` and its serving data to ``out_dir`` (replaced if it exists).

    Args:
        model: a fitted :class:`~sona.pipeline.Pipeline`, or a fitted model that declares its
            ONNX scorer (it is then served as a pipeline around it).
        out_dir: the bundle folder, conventionally ``models/<name>/<version>``.
        name, version: registry identity recorded in the manifest.
        catalog: item metadata (content vectors, genres) for a plain model; a pipeline
            carries its own.
        interactions: the training log a plain model was fitted on (popularity, time of day).
        kg, links: knowledge-graph facts for the text encoder; optional.
        run_id: the MLflow run the model came from.

    Raises:
        NotExportableError: the model cannot be exported (nothing is written).
        DataError: a graph fails its parity check, or a plain model comes without its
            training interactions.
    """
    model._check_fitted()
    pipeline = as_pipeline(model, catalog=catalog, interactions=interactions, kg=kg,
                           links=links, config=config)
    final = Path(out_dir)
    tmp = final.with_name(f".{final.name}.tmp-{time.time_ns()}")
    tmp.mkdir(parents=True)
    try:
        manifest, reports = _write_bundle(pipeline, tmp, name=name, version=str(version),
                                          model_class=type(model), config=config,
                                          run_id=run_id)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("exported %s v%s to %s", name, version, final)
    return ExportResult(final, manifest, reports)


def as_pipeline(model: Recommender[Any], *, catalog: Catalog | None,
                interactions: Interactions | None, kg: pd.DataFrame | None = None,
                links: pd.DataFrame | None = None,
                config: ExportConfig = ExportConfig()) -> Pipeline:
    """``model`` itself when it is a pipeline, else the pipeline around it.

    Raises:
        NotExportableError: the model cannot be a scorer graph.
        DataError: a plain model without its training interactions.
    """
    if isinstance(model, Pipeline):
        return model
    scorer_export(model)  # a model that cannot export says why before anything else runs
    if interactions is None:
        raise DataError(f"exporting {type(model).__name__} needs the interactions it was "
                        "fitted on (interactions=...): the served pipeline takes popularity, "
                        "time-of-day patterns and cold start from them")
    side = ItemSideData(catalog, kg, links) if catalog is not None else None
    return Pipeline.around(model, interactions, side=side, content=config.content,
                           lora=config.lora,
                           onnx=OnnxConfig(exporter=config.exporter, opset=config.opset))


def _write_bundle(pipeline: Pipeline, out: Path, *, name: str, version: str,
                  model_class: type, config: ExportConfig,
                  run_id: str | None) -> tuple[dict[str, Any], list[ParityReport]]:
    from sona.search.faiss_index import FaissIndex, FaissIndexConfig

    rng = np.random.default_rng(config.seed)
    reports: list[ParityReport] = []
    manifest_graphs: dict[str, dict[str, Any]] = {}
    index_vectors = pipeline.features_.vectors
    # the bytes the pipeline was evaluated with: written out, and checked once more
    for source in pipeline.model_sources():
        spec = source.export
        path = out / f"{source.name}.onnx"
        path.write_bytes(pipeline.graphs_[source.name].tobytes())
        session = graphs.GraphSession(pipeline.graphs_[source.name])
        inputs = spec.random_inputs(rng, config.parity_inputs)
        (ours,) = session({spec.input_name: inputs})
        reports.append(compare_scores(source.name, ours, spec.reference(inputs),
                                      atol=config.atol))
        manifest_graphs[source.name] = {
            "file": path.name, "kind": spec.kind, "input": spec.input_name,
            "model": type(source.model).__name__, "meta": spec.meta}
        if source.name == "collaborative" and "item_factors" in spec.arrays:
            index_vectors = np.asarray(spec.arrays["item_factors"], np.float32)
    f = pipeline.features_
    (out / "content.onnx").write_bytes(pipeline.graphs_["content"].tobytes())
    content = graphs.GraphSession(pipeline.graphs_["content"]).session
    reports += content_parity(content, f.vectors, f.lora_base, f.lora_scaling,
                              config.parity_inputs, config.seed, atol=config.atol)
    manifest_graphs["content"] = {"file": "content.onnx", "kind": "content",
                                  "input": "preference,lora_b"}
    failed = [r for r in reports if not r.ok(config.atol)]
    if failed:
        raise DataError("ONNX parity failed: " + "; ".join(
            f"{r.graph}: max|diff|={r.max_abs_diff:.3g}, top-10 agreeing up to ties "
            f"{r.top10_identical:.1%}" for r in failed))

    pipeline.save(out / "pipeline")
    index = FaissIndex(FaissIndexConfig(kind=config.index_kind, metric="cosine"))
    index.add(pipeline.items_.ids_array, index_vectors)
    index.save(out / "index")
    lora = pipeline.config.lora
    manifest: dict[str, Any] = {
        "name": name, "version": version, "created_at": time.time(), "run_id": run_id,
        "model_class": f"{model_class.__module__}.{model_class.__qualname__}",
        "n_users": len(pipeline.users_), "n_items": len(pipeline.items_),
        "graphs": manifest_graphs, "weights": pipeline.weights, "mmr_lambda": pipeline.mmr_lambda,
        "content": f.content_info, "lora": {**to_dict(lora), "scaling": lora.scaling},
        "index_vectors": "item_factors" if index_vectors is not f.vectors else "content",
        "exporter": pipeline.config.onnx.exporter, "opset": pipeline.config.onnx.opset,
        "parity": {"atol": config.atol, "checks": [r.to_dict() for r in reports]},
    }
    io.write_json(out / MANIFEST, manifest)
    return manifest, reports


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """The manifest of an exported bundle.

    Raises:
        DataError: the folder has no manifest (not exported, or an export in progress).
    """
    path = Path(bundle) / MANIFEST
    if not path.exists():
        raise DataError("not an exported SONA bundle (no manifest.json)", path=bundle)
    return dict(io.read_json(path))


__all__ = [
    "MANIFEST", "ExportConfig", "ExportResult", "as_pipeline", "export_graph", "export_model",
    "read_manifest", "scorer_spec",
]
