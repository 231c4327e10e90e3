"""Torch modules of the serving-side ONNX graphs: content/LoRA scores and the hybrid ranker.

Each module holds the learned item-side arrays as constants, so the serving process sends
only the per-request inputs (a preference vector, an adapter, source scores) and gets a whole
``(batch, n_items)`` result back. They are the "torch eager" side of the ONNX parity tests
and of ``sona bench onnx``. The per-model scorer graphs (:class:`FactorScorer`,
:class:`TowerScorer`, :class:`ItemItemScorer`, :class:`PopularityScorer`) live in
:mod:`sona.models.onnx_graphs`, next to the models that declare them; they are re-exported
here for callers that build a bundle's graphs from one module.

Graphs and their inputs (batch ``B``, items ``n``, content dim ``D``, LoRA rank ``r``):

- :class:`ContentScorer`: ``preference (B, D), lora_b (B, D, r) -> content (B, n), lora (B, n)``
  with ``content = p·Xᵀ`` and ``lora = clamp(pᵀ·B·(s·A·Xᵀ), -1, 1)`` (the LoRA adapter is an
  input, so one graph serves every user).
- :class:`HybridRanker`: ``sources (B, S, n), weights (B, S), lora (B, n), lora_boost (B, 1),
  exclude (B, n) -> top_scores (B, K), top_idx (B, K)``: per-row min-max normalised
  sources, weighted sum, ``·(1 + boost·lora)``, exclusions to ``-inf``, top-``K``.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from sona.models.onnx_graphs import (
    FactorScorer,
    ItemItemScorer,
    PopularityScorer,
    TowerScorer,
    as_constant,
)


class ContentScorer(torch.nn.Module):
    """Content similarity ``p·Xᵀ`` and the LoRA score of every item for a batch of users.

    Args:
        item_vectors: ``(n, D)`` content embeddings (L2-normalised rows or zeros).
        base: shared LoRA ``A`` ``(r, D)``.
        scaling: LoRA ``alpha / r``.
    """

    input_names = ("preference", "lora_b")
    items_t: torch.Tensor
    projected: torch.Tensor

    def __init__(self, item_vectors: NDArray[np.floating], base: NDArray[np.floating],
                 scaling: float) -> None:
        super().__init__()
        x = np.asarray(item_vectors, np.float64)
        self.register_buffer("items_t", as_constant(x.T))
        # s·A·Xᵀ precomputed once: per request only pᵀ·B (r numbers) is left to compute
        projected = scaling * (np.asarray(base, np.float64) @ x.T)
        self.register_buffer("projected", as_constant(projected))

    def forward(self, preference: torch.Tensor,
                lora_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        content = preference @ self.items_t
        u = torch.bmm(preference.unsqueeze(1), lora_b).squeeze(1)  # (B, r)
        lora = torch.clamp(u @ self.projected, -1.0, 1.0)
        return content, lora


class HybridRanker(torch.nn.Module):
    """Blend normalised candidate-source scores, apply the LoRA boost, mask, take top-K.

    Args:
        k: list length the graph returns (the candidate pool for MMR re-ranking).
    """

    input_names = ("sources", "weights", "lora", "lora_boost", "exclude")

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = int(k)

    def forward(self, sources: torch.Tensor, weights: torch.Tensor, lora: torch.Tensor,
                lora_boost: torch.Tensor,
                exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = sources.amin(dim=2, keepdim=True)
        span = sources.amax(dim=2, keepdim=True) - low
        norm = torch.where(span > 0, (sources - low) / torch.where(span > 0, span, 1.0), 0.0)
        blend = (norm * weights.unsqueeze(2)).sum(dim=1)
        boosted = blend * (1.0 + lora_boost * lora)
        masked = torch.where(exclude, torch.full_like(boosted, float("-inf")), boosted)
        top_scores, top_idx = torch.topk(masked, self.k, dim=1)
        return top_scores, top_idx


def hybrid_reference(sources: NDArray[np.floating], weights: NDArray[np.floating],
                     lora: NDArray[np.floating], lora_boost: NDArray[np.floating],
                     exclude: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Numpy reference of :class:`HybridRanker`'s blended, masked scores ``(B, n)``."""
    src = np.asarray(sources, np.float64)
    low = src.min(axis=2, keepdims=True)
    span = src.max(axis=2, keepdims=True) - low
    norm = np.divide(src - low, span, out=np.zeros_like(src), where=span > 0)
    blend = (norm * np.asarray(weights, np.float64)[:, :, None]).sum(axis=1)
    boosted = blend * (1.0 + np.asarray(lora_boost, np.float64) * np.asarray(lora, np.float64))
    return np.where(exclude, -np.inf, boosted)


__all__ = [
    "ContentScorer", "FactorScorer", "HybridRanker", "ItemItemScorer", "PopularityScorer",
    "TowerScorer", "hybrid_reference",
]
