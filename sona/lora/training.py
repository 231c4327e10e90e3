"""Per-user LoRA training (SPEC §2.2 UpdateUserLoRA): SGD on ``B`` only.

Each event is one pair (content vector ``x``, label = the §2.1 engagement weight without the
dismissal term); ``pred = sigmoid(dot(LoRA(x), preference_vector))``, binary cross-entropy,
one SGD step per pair, ``epochs`` passes. Users with few interactions learn with the faster
SPARC rate. torch is imported inside :func:`train_adapter`, so importing :mod:`sona.lora`
stays cheap for serving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sona.errors import DataError
from sona.lora.adapter import LoRAConfig, lora_adapter_class

# the SPEC §2.2 defaults; a frozen dataclass, so one shared instance is safe
_DEFAULT_CONFIG = LoRAConfig()


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train_adapter`."""

    user_matrix: NDArray[np.float32]  # the trained B, (D, rank)
    losses: tuple[float, ...]  # mean BCE per epoch
    iterations: int  # SGD steps taken
    events_used: int
    duration_ms: float


def train_adapter(
    base: NDArray[np.float32],
    user: NDArray[np.float32] | None,
    content: NDArray[np.float32],
    labels: NDArray[np.float64],
    preference: NDArray[np.float32],
    *,
    interaction_count: int,
    config: LoRAConfig = _DEFAULT_CONFIG,
) -> TrainResult:
    """SGD on ``B`` only over (content, label) pairs, one step per pair (SPEC §2.2).

    Args:
        base: shared ``A`` ``(rank, D)``.
        user: current ``B`` ``(D, rank)`` or None (zeros).
        content: content vector per event, ``(n, D)``.
        labels: engagement label per event in [0, 1], ``(n,)``.
        preference: the user's preference vector ``(D,)``.
        interaction_count: the user's total events (selects the cold learning rate).

    Raises:
        DataError: fewer than ``config.min_events`` pairs, or mismatched shapes.
    """
    n = len(content)
    if n < config.min_events:
        raise DataError(f"LoRA training needs >= {config.min_events} events, got {n}")
    if len(labels) != n or content.ndim != 2 or content.shape[1] != base.shape[1]:
        raise DataError(f"content {content.shape} / labels {np.shape(labels)} do not match "
                        f"the base matrix {base.shape}")
    import torch

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    adapter = lora_adapter_class()(base, user, config.scaling)
    lr = config.cold_lr if interaction_count < config.cold_interactions else config.lr
    opt = torch.optim.SGD([adapter.b], lr=lr)
    x = torch.as_tensor(np.asarray(content, np.float32))
    y = torch.as_tensor(np.clip(np.asarray(labels, np.float32), 0.0, 1.0))
    pref = torch.as_tensor(np.asarray(preference, np.float32))
    losses = []
    for _ in range(config.epochs):
        total = 0.0
        for i in range(n):
            opt.zero_grad()
            pred = torch.sigmoid(adapter(x[i:i + 1]) @ pref).clamp(config.eps, 1 - config.eps)
            loss = torch.nn.functional.binary_cross_entropy(pred, y[i:i + 1])
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / n)
    b = adapter.b.detach().numpy().astype(np.float32)
    return TrainResult(b, tuple(losses), config.epochs * n, n,
                       (time.perf_counter() - start) * 1000.0)


__all__ = ["TrainResult", "train_adapter"]
