"""ONNX Runtime vs torch eager latency of an exported bundle's graphs, batch 1 and 64.

Both sides run the same modules (:mod:`sona.serving.graphs`) with the same inputs and the
same thread count; the bundle's ``model/`` directory rebuilds the torch scorer. Timings are
medians of ``repeats`` calls after ``warmup`` calls, bounded by ``max_seconds`` per case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.serving.bundle import read_manifest


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """One (graph, batch) case."""

    graph: str
    batch: int
    onnx_ms: float  # median per call
    torch_ms: float
    n_calls: int

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
             "speedup": r.speedup, "n_calls": r.n_calls} for r in self.rows]}


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


def run_onnx_bench(bundle: str | Path, *, batches: tuple[int, ...] = (1, 64),
                   repeats: int = 200, warmup: int = 10, max_seconds: float = 5.0,
                   threads: int = 1, seed: int = 0) -> OnnxBenchResult:
    """Time every graph of ``bundle`` in ONNX Runtime and in torch eager mode.

    Args:
        bundle: an exported folder (``models/<name>/<version>``).
        batches: batch sizes to time.
        repeats: timed calls per case (median reported).
        warmup: untimed calls first.
        max_seconds: cap per case (fewer calls when slow).
        threads: intra-op threads for both runtimes.
    """
    import onnxruntime as ort
    import torch

    from sona import io
    from sona.models.base import Recommender
    from sona.serving.export_onnx import scorer_spec
    from sona.serving.graphs import ContentScorer, HybridRanker

    root = Path(bundle)
    manifest = read_manifest(root)
    _, arrays, _ = io.load_model_dir(root / "arrays")
    spec = scorer_spec(Recommender.load(root / "model"))
    vectors, base = arrays["item_vectors"], arrays["lora_base"]
    n_items, dim, rank = int(manifest["n_items"]), vectors.shape[1], base.shape[0]
    n_src = len(manifest["sources"])
    modules = {
        "scorer": spec.module,
        "content": ContentScorer(vectors, base, float(manifest["lora"]["scaling"])),
        "ranker": HybridRanker(int(manifest["pool_size"])),
    }
    torch.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    rng = np.random.default_rng(seed)
    result = OnnxBenchResult(str(root), threads)
    for graph, module in modules.items():
        module.eval()
        session = ort.InferenceSession(str(root / f"{graph}.onnx"), opts,
                                       providers=["CPUExecutionProvider"])
        for b in batches:
            feeds: dict[str, NDArray[Any]]
            if graph == "scorer":
                feeds = {spec.input_name: spec.random_inputs(rng, b)}
            elif graph == "content":
                pref = rng.normal(size=(b, dim)).astype(np.float32)
                feeds = {"preference": pref / np.linalg.norm(pref, axis=1, keepdims=True),
                         "lora_b": rng.normal(scale=0.1, size=(b, dim, rank)).astype(np.float32)}
            else:
                feeds = {"sources": rng.random((b, n_src, n_items)).astype(np.float32),
                         "weights": np.full((b, n_src), 1 / n_src, np.float32),
                         "lora": rng.uniform(-1, 1, (b, n_items)).astype(np.float32),
                         "lora_boost": np.full((b, 1), 0.3, np.float32),
                         "exclude": rng.random((b, n_items)) < 0.05}
            tensors = [torch.as_tensor(v) for v in feeds.values()]

            def eager(m: Any = module, t: list[Any] = tensors) -> Any:
                with torch.inference_mode():
                    return m(*t)

            def onnx(s: Any = session, f: dict[str, NDArray[Any]] = feeds) -> Any:
                return s.run(None, f)

            onnx_ms, n_calls = _median_ms(onnx, repeats, warmup, max_seconds)
            torch_ms, _ = _median_ms(eager, repeats, warmup, max_seconds)
            result.rows.append(LatencyRow(graph, b, onnx_ms, torch_ms, n_calls))
    return result


__all__ = ["LatencyRow", "OnnxBenchResult", "run_onnx_bench"]
