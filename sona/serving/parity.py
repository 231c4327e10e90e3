"""ONNX Runtime vs Python parity checks for the exported graphs (STYLE.md §4).

Each check feeds the same ``n`` random inputs (seeded) to an ONNX Runtime session and to
the Python reference (the Recommender itself for scorers, the numpy formulas of
:mod:`sona.lora` and :func:`sona.serving.graphs.hybrid_reference` otherwise) and reports
the largest absolute score difference and whether every top-10 list is identical. Top-10
lists of both sides are taken with the one shared :func:`sona.ranking.topk`, so exact ties
(popularity counts) break the same way on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.lora import lora_scores
from sona.ranking.topk import topk
from sona.serving.graphs import hybrid_reference


@dataclass(frozen=True, slots=True)
class ParityReport:
    """Outcome of one parity check."""

    graph: str
    n_inputs: int
    max_abs_diff: float
    top10_identical: float  # fraction of inputs whose top-10 lists are identical

    def ok(self, atol: float) -> bool:
        """Within ``atol`` and every top-10 list identical."""
        return self.max_abs_diff <= atol and self.top10_identical == 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest."""
        return {"graph": self.graph, "n_inputs": self.n_inputs,
                "max_abs_diff": self.max_abs_diff, "top10_identical": self.top10_identical}


def _compare(graph: str, ours: NDArray[np.floating], ref: NDArray[np.floating],
             k: int = 10) -> ParityReport:
    ours64, ref64 = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    finite = np.isfinite(ref64)
    if not np.array_equal(finite, np.isfinite(ours64)):
        diff = float("inf")
    else:
        diff = float(np.max(np.abs(ours64[finite] - ref64[finite]), initial=0.0))
    kk = min(k, ref64.shape[1])
    top_ours, _ = topk(ours64, kk)
    top_ref, _ = topk(ref64, kk)
    same = float(np.mean(np.all(top_ours == top_ref, axis=1)))
    return ParityReport(graph, int(ref64.shape[0]), diff, same)


def scorer_parity(session: Any, input_name: str, inputs: NDArray[np.float32],
                  reference: Callable[[NDArray[np.float32]], NDArray[np.floating]]) -> ParityReport:
    """Scorer graph vs the Python model on ``inputs`` (one row per synthetic user)."""
    (ours,) = session.run(None, {input_name: np.ascontiguousarray(inputs, np.float32)})
    return _compare("scorer", ours, reference(inputs))


def content_parity(session: Any, item_vectors: NDArray[np.float32], base: NDArray[np.float32],
                   scaling: float, n: int, seed: int) -> list[ParityReport]:
    """Content/LoRA graph vs numpy on ``n`` random unit preference vectors and adapters.

    Adapters are scaled so the largest LoRA score of each input is 0.9: clamped scores tie
    at exactly ±1 and make top-10 order meaningless. A second pass with 3x larger
    adapters exercises the clamp; it counts toward the max-abs-diff only.
    """
    rng = np.random.default_rng(seed)
    dim, rank = item_vectors.shape[1], base.shape[0]
    pref = rng.normal(size=(n, dim))
    pref = (pref / np.linalg.norm(pref, axis=1, keepdims=True)).astype(np.float32)
    raw_b = rng.normal(size=(n, dim, rank))
    u = np.einsum("nd,ndr->nr", pref.astype(np.float64), raw_b) * scaling
    peak = np.abs(u @ (base.astype(np.float64) @ item_vectors.T.astype(np.float64))).max(axis=1)
    lora_b = (raw_b * (0.9 / np.where(peak > 0, peak, 1.0))[:, None, None]).astype(np.float32)

    def run(adapters: NDArray[np.float32]) -> tuple[Any, Any, NDArray[np.floating]]:
        content, lora = session.run(None, {"preference": pref, "lora_b": adapters})
        ref = np.stack([lora_scores(base, adapters[i], item_vectors, pref[i], scaling)
                        for i in range(n)])
        return content, lora, ref

    content, lora, ref_lora = run(lora_b)
    ref_content = pref.astype(np.float64) @ item_vectors.T.astype(np.float64)
    lora_report = _compare("lora", lora, ref_lora)
    _, clamped, ref_clamped = run((lora_b * 3.0).astype(np.float32))
    clamp_diff = float(np.max(np.abs(clamped.astype(np.float64) - ref_clamped), initial=0.0))
    lora_report = ParityReport("lora", n, max(lora_report.max_abs_diff, clamp_diff),
                               lora_report.top10_identical)
    return [_compare("content", content, ref_content), lora_report]


def ranker_parity(session: Any, n_items: int, n_sources: int, pool: int, n: int,
                  seed: int) -> ParityReport:
    """Hybrid ranker graph vs :func:`hybrid_reference` on ``n`` random requests."""
    rng = np.random.default_rng(seed)
    sources = rng.random((n, n_sources, n_items)).astype(np.float32)
    weights = rng.dirichlet(np.ones(n_sources), size=n).astype(np.float32)
    lora = rng.uniform(-1, 1, (n, n_items)).astype(np.float32)
    boost = np.full((n, 1), 0.3, np.float32)
    exclude = rng.random((n, n_items)) < 0.1
    top_scores, top_idx = session.run(None, {"sources": sources, "weights": weights,
                                             "lora": lora, "lora_boost": boost,
                                             "exclude": exclude})
    ref = hybrid_reference(sources, weights, lora, boost, exclude)
    ref_idx, ref_scores = topk(ref, pool)
    finite = np.isfinite(ref_scores)
    diff = float(np.max(np.abs(np.where(finite, top_scores - ref_scores, 0.0)), initial=0.0))
    same_idx = np.where(finite, top_idx == ref_idx, True)
    same = float(np.mean(np.all(same_idx[:, :10], axis=1)))
    return ParityReport("ranker", n, diff, same)


__all__ = ["ParityReport", "content_parity", "ranker_parity", "scorer_parity"]
