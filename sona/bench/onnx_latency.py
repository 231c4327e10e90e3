"""ONNX Runtime vs torch eager latency of an exported pipeline's graphs, batch 1 and 64.

The bundle's ``pipeline/`` directory is the served :class:`~sona.pipeline.Pipeline`; its
graphs are what ``sona run`` evaluated and the service runs: one scorer per model source
(``collaborative``, ``graph_based``; the torch side is the module the model declares in
``export_scorer``) and ``content`` (content similarity + LoRA; the torch side is
``pipeline.content_source().module()``). The ONNX side is a
:class:`~sona.pipeline.graphs.GraphSession` over the pipeline's own graph bytes
(``pipeline.graphs_``). Both sides get the same inputs and thread count, and each row
records how far their outputs are apart, so a row never times two different computations.
Timings are medians of ``repeats`` calls after ``warmup`` calls, bounded by ``max_seconds``
per case. (Blend, context, cold start and MMR are numpy code shared by both paths, not
graphs.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sona.serving.export_onnx import read_manifest

if TYPE_CHECKING:
    from sona.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """One (graph, batch) case."""

    graph: str
    batch: int
    onnx_ms: float  # median per call
    torch_ms: float
    n_calls: int
    max_abs_diff: float  # largest |ONNX - torch| over the outputs of one call

    @property
    def speedup(self) -> float:
        """torch eager time / ONNX Runtime time."""
        return self.torch_ms / self.onnx_ms if self.onnx_ms > 0 else float("nan")


@dataclass
class OnnxBenchResult:
    """All cases plus the environment they ran in."""

    bundle: str
    threads: int
    rows: list[LatencyRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"bundle": self.bundle, "threads": self.threads, "rows": [
            {"graph": r.graph, "batch": r.batch, "onnx_ms": r.onnx_ms, "torch_ms": r.torch_ms,
             "speedup": r.speedup, "n_calls": r.n_calls, "max_abs_diff": r.max_abs_diff}
            for r in self.rows]}


def _median_ms(fn: Callable[[], Any], repeats: int, warmup: int,
               max_seconds: float) -> tuple[float, int]:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < repeats and (not times or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0), len(times)


def pipeline_modules(pipeline: Pipeline) -> dict[str, Any]:
    """The torch module behind each of ``pipeline``'s graphs, by graph name."""
    modules: dict[str, Any] = {m.name: m.export.module for m in pipeline.model_sources()}
    modules["content"] = pipeline.content_source().module()
    return modules


def _feeds(pipeline: Pipeline, graph: str, rng: np.random.Generator,
           batch: int) -> dict[str, NDArray[Any]]:
    if graph == "content":
        f = pipeline.features_
        pref = rng.normal(size=(batch, f.dim)).astype(np.float32)
        return {"preference": pref / np.linalg.norm(pref, axis=1, keepdims=True),
                "lora_b": rng.normal(scale=0.1, size=(batch, f.dim, f.lora_rank)
                                     ).astype(np.float32)}
    spec = next(m for m in pipeline.model_sources() if m.name == graph).export
    return {spec.input_name: spec.random_inputs(rng, batch)}


def run_onnx_bench(bundle: str | Path, *, batches: tuple[int, ...] = (1, 64),
                   repeats: int = 200, warmup: int = 10, max_seconds: float = 5.0,
                   threads: int = 1, seed: int = 0) -> OnnxBenchResult:
    """Time every graph of ``bundle``'s pipeline in ONNX Runtime and in torch eager mode.

    Args:
        bundle: an exported folder (``models/<name>/<version>``).
        batches: batch sizes to time.
        repeats: timed calls per case (median reported).
        warmup: untimed calls first.
        max_seconds: cap per case (fewer calls when slow).
        threads: intra-op threads for both runtimes.

    Raises:
        DataError: not a bundle, or one exported before the pipeline (no ``pipeline/``).
    """
    import torch

    from sona.errors import DataError
    from sona.models.base import Recommender
    from sona.pipeline import Pipeline
    from sona.pipeline.graphs import GraphSession

    root = Path(bundle)
    manifest = read_manifest(root)
    if "graphs" not in manifest or not (root / "pipeline").exists():
        raise DataError("bundle was exported by an older SONA (no pipeline/); export it again",
                        path=root)
    pipeline: Recommender[Any] = Recommender.load(root / "pipeline")
    if not isinstance(pipeline, Pipeline):
        raise DataError(f"bundle holds a {type(pipeline).__name__}, not a Pipeline", path=root)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    result = OnnxBenchResult(str(root), threads)
    for graph, module in pipeline_modules(pipeline).items():
        module.eval()
        session = GraphSession(pipeline.graphs_[graph], threads=threads)
        for b in batches:
            feeds = _feeds(pipeline, graph, rng, b)
            tensors = [torch.as_tensor(v) for v in feeds.values()]

            def eager(m: Any = module, t: list[Any] = tensors) -> Any:
                with torch.inference_mode():
                    return m(*t)

            def onnx(s: Any = session, f: dict[str, NDArray[Any]] = feeds) -> Any:
                return s(f)

            ours, theirs = onnx(), eager()
            theirs = theirs if isinstance(theirs, tuple | list) else (theirs,)
            diff = max(float(np.max(np.abs(np.asarray(o) - t.numpy()), initial=0.0))
                       for o, t in zip(ours, theirs, strict=True))
            onnx_ms, n_calls = _median_ms(onnx, repeats, warmup, max_seconds)
            torch_ms, _ = _median_ms(eager, repeats, warmup, max_seconds)
            result.rows.append(LatencyRow(graph, b, onnx_ms, torch_ms, n_calls, diff))
    return result


__all__ = ["LatencyRow", "OnnxBenchResult", "pipeline_modules", "run_onnx_bench"]
