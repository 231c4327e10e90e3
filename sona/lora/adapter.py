"""Two-tier LoRA personalisation adapter (SPEC §2.2; Hu et al., "LoRA", arXiv:2106.09685).

Tier 1 is a shared base matrix ``A`` of shape ``(rank, D)``, frozen while users train;
tier 2 is a per-user matrix ``B`` of shape ``(D, rank)``, initialised to zeros (so a new
adapter changes nothing). ``LoRA(x) = B·(A·x)·scaling`` with ``scaling = alpha / rank``.

Training (UpdateUserLoRA) needs at least ``min_events`` recent events. Each event is one
pair (content vector ``x``, label = the §2.1 engagement weight without the dismissal term);
``pred = sigmoid(dot(LoRA(x), preference_vector))``, binary cross-entropy, plain SGD on
``B`` only, one step per pair, ``epochs`` passes. Users with few interactions learn with the
faster SPARC rate. The adapter's score of an item is
``clamp(dot(LoRA(content), preference_vector), -1, 1)``, which the hybrid ranker turns into
a boost ``score *= 1 + lora_boost·lora_score``.

This module holds the adapter itself (config, base matrix, torch module, numpy scoring);
training lives in :mod:`sona.lora.training`, storage in :mod:`sona.lora.store`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoRAConfig:
    """LoRA adapter shape and per-user training settings (SPEC §2.2 values)."""

    # adapter rank r (columns of B, rows of A)
    rank: int = 8
    # LoRA alpha; the output is scaled by alpha / rank
    alpha: float = 16.0
    # SGD learning rate on B for established users
    lr: float = 0.001
    # SGD learning rate while the user has fewer than cold_interactions events (SPARC)
    cold_lr: float = 0.05
    # interactions below which cold_lr applies
    cold_interactions: int = 20
    # passes over the (content, label) pairs per training call
    epochs: int = 5
    # events required before an adapter may be trained (HTTP 400 below)
    min_events: int = 10
    # most recent events used per training call
    max_events: int = 500
    # prediction clamp before the log in BCE (SPARC: 1e-7)
    eps: float = 1e-7
    # seed of the shared base matrix A
    seed: int = 0
    # storage precision of B
    dtype: Literal["float32", "float16"] = "float32"

    @property
    def scaling(self) -> float:
        """``alpha / rank``."""
        return self.alpha / self.rank


def init_base_matrix(dim: int, config: LoRAConfig = LoRAConfig()) -> NDArray[np.float32]:
    """Shared ``A`` ``(rank, dim)``: zero-mean normal, std ``sqrt(2 / (rank + dim))`` (seeded)."""
    if dim < 1 or config.rank < 1:
        raise ValueError(f"dim and rank must be >= 1, got dim={dim}, rank={config.rank}")
    rng = np.random.default_rng(config.seed)
    std = np.sqrt(2.0 / (config.rank + dim))
    return rng.normal(0.0, std, size=(config.rank, dim)).astype(np.float32)


def lora_adapter_class() -> type:
    """Build :class:`LoRAAdapter` on first use: torch is imported only when training."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    import torch

    class LoRAAdapter(torch.nn.Module):
        """``x -> B·(A·x)·scaling`` with ``A`` frozen (a buffer) and ``B`` trainable.

        Args:
            base: ``A``, shape ``(rank, D)``.
            user: ``B``, shape ``(D, rank)``; zeros when None.
            scaling: ``alpha / rank``.
        """

        a: torch.Tensor  # the registered buffer A; declared so its type is a tensor

        def __init__(self, base: NDArray[np.float32], user: NDArray[np.float32] | None,
                     scaling: float) -> None:
            super().__init__()
            rank, dim = base.shape
            self.register_buffer("a", torch.as_tensor(np.asarray(base, np.float32)))
            b = np.zeros((dim, rank), np.float32) if user is None else \
                np.asarray(user, np.float32)
            if b.shape != (dim, rank):
                raise ValueError(f"user matrix B must have shape {(dim, rank)}, got {b.shape}")
            self.b = torch.nn.Parameter(torch.as_tensor(b.copy()))
            self.scaling = float(scaling)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``(n, D) -> (n, D)``."""
            return (x @ self.a.T) @ self.b.T * self.scaling

        def score(self, x: torch.Tensor, preference: torch.Tensor) -> torch.Tensor:
            """``clamp(dot(LoRA(x), preference), -1, 1)`` per row of ``x``."""
            return torch.clamp(self.forward(x) @ preference, -1.0, 1.0)

    _ADAPTER = LoRAAdapter
    return _ADAPTER


_ADAPTER: type | None = None


def __getattr__(name: str) -> Any:
    # PEP 562: ``from sona.lora import LoRAAdapter`` works, yet serving imports this module
    # (config, store, numpy scores) without paying for torch
    if name == "LoRAAdapter":
        return lora_adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lora_scores(base: NDArray[np.float32], user: NDArray[np.float32], items: NDArray[np.float32],
                preference: NDArray[np.float32], scaling: float) -> NDArray[np.float32]:
    """``clamp(pᵀ·B·A·xᵢ·s, -1, 1)`` for every row ``xᵢ`` of ``items`` (numpy reference)."""
    u = (preference.astype(np.float64) @ user) * scaling  # (rank,)
    return np.clip((items.astype(np.float64) @ base.T.astype(np.float64)) @ u, -1, 1).astype(
        np.float32)


__all__ = ["LoRAConfig", "init_base_matrix", "lora_adapter_class", "lora_scores"]
