"""Torch modules of the per-model ONNX scorer graphs (the graphs :mod:`sona.models.export` names).

Each module holds the learned item-side arrays as constants, so the serving process sends
only the per-request input (a user representation) and gets a whole ``(batch, n_items)``
score matrix back. They are the "torch eager" side of the ONNX parity tests and of
``sona bench onnx``. They live next to the models because each model says which graph it
exports (STYLE.md §11) and models never import :mod:`sona.serving`; the serving-only graphs
(content + LoRA) is :class:`sona.pipeline.sources.ContentScorer`.

Graphs and their inputs (batch ``B``, items ``n``):

- :class:`FactorScorer`: ``user_factors (B, f) -> scores (B, n) = U·Vᵀ + b`` (ALS, BPR,
  LightGCN, profile-scored ContentBased).
- :class:`TowerScorer`: ``user_embedding (B, f) -> (e·Wᵀ)·Vᵀ + b`` (two-tower: the user
  tower runs in the graph, item tower outputs are constants).
- :class:`ItemItemScorer`: ``user_items (B, n) -> scores (B, n) = X·W`` (EASE, ItemKNN).
- :class:`PopularityScorer`: ``user_items (B, n) -> scores (B, n)`` (the same list for all).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray


def as_constant(array: NDArray[np.floating]) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32))


class FactorScorer(torch.nn.Module):
    """``U·Vᵀ + b``: matrix-factorisation scores for a batch of user factor rows."""

    input_names = ("user_factors",)
    item_factors_t: torch.Tensor
    item_bias: torch.Tensor

    def __init__(self, item_factors: NDArray[np.floating],
                 item_bias: NDArray[np.floating] | None = None) -> None:
        super().__init__()
        self.register_buffer("item_factors_t", as_constant(item_factors).T.contiguous())
        bias = np.zeros(len(item_factors), np.float32) if item_bias is None else item_bias
        self.register_buffer("item_bias", as_constant(bias))

    def forward(self, user_factors: torch.Tensor) -> torch.Tensor:
        return user_factors @ self.item_factors_t + self.item_bias


class TowerScorer(torch.nn.Module):
    """Two-tower scores: the user tower's projection in the graph, item tower outputs fixed.

    ``user_embedding (B, f) -> (e·Wᵀ)·Vᵀ + b`` with ``W`` the user tower's square projection
    and ``V`` the item tower outputs (precomputed: items do not change per request).
    """

    input_names = ("user_embedding",)
    user_proj_t: torch.Tensor
    item_vectors_t: torch.Tensor
    item_bias: torch.Tensor

    def __init__(self, user_proj: NDArray[np.floating], item_vectors: NDArray[np.floating],
                 item_bias: NDArray[np.floating]) -> None:
        super().__init__()
        self.register_buffer("user_proj_t", as_constant(user_proj).T.contiguous())
        self.register_buffer("item_vectors_t", as_constant(item_vectors).T.contiguous())
        self.register_buffer("item_bias", as_constant(item_bias))

    def forward(self, user_embedding: torch.Tensor) -> torch.Tensor:
        return (user_embedding @ self.user_proj_t) @ self.item_vectors_t + self.item_bias


class ItemItemScorer(torch.nn.Module):
    """``X·W``: item-item model scores for a batch of user interaction rows."""

    input_names = ("user_items",)
    weights: torch.Tensor

    def __init__(self, weights: NDArray[np.floating]) -> None:
        super().__init__()
        self.register_buffer("weights", as_constant(weights))

    def forward(self, user_items: torch.Tensor) -> torch.Tensor:
        return user_items @ self.weights


class PopularityScorer(torch.nn.Module):
    """Item popularity broadcast to the batch (the input only sets the batch size)."""

    input_names = ("user_items",)
    item_scores: torch.Tensor

    def __init__(self, item_scores: NDArray[np.floating]) -> None:
        super().__init__()
        self.register_buffer("item_scores", as_constant(item_scores))

    def forward(self, user_items: torch.Tensor) -> torch.Tensor:
        return user_items * 0.0 + self.item_scores


__all__ = ["FactorScorer", "ItemItemScorer", "PopularityScorer", "TowerScorer"]
