"""Two-tier LoRA personalisation (SPEC §2.2; Hu et al., "LoRA", arXiv:2106.09685).

Tier 1 is a shared, frozen model; tier 2 is a small per-user (or per-segment) adapter.

- :mod:`sona.lora.adapter`: the SPEC §2.2 adapter ``B·(A·x)·scaling`` (config, shared base
  matrix ``A``, torch module, numpy scoring);
- :mod:`sona.lora.training`: SGD on ``B`` from a user's events;
- :mod:`sona.lora.two_tier`: peft adapters on a fitted :class:`~sona.models.two_tower.TwoTower`
  (:class:`PersonalizedScorer`);
- :mod:`sona.lora.store`: versioned adapter storage (:class:`AdapterStore`) over the
  :mod:`~sona.lora.directory` and :mod:`~sona.lora.sql` backends (:mod:`sona.lora.backend`
  holds what they share, so neither imports the store).

Serving imports this package for configs, stores and numpy scores without paying for torch
or peft: ``LoRAAdapter`` and the :mod:`~sona.lora.two_tier` names load on first access
(PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sona.lora.adapter import LoRAConfig, init_base_matrix, lora_scores
from sona.lora.backend import DTYPES, USER_MATRIX, AdapterBackend, AdapterInfo, AdapterRecord
from sona.lora.directory import WEIGHTS_FILE, DirectoryBackend
from sona.lora.sql import SqlBackend
from sona.lora.store import AdapterStore, DirectoryAdapterStore, SqlAdapterStore
from sona.lora.training import TrainResult, train_adapter

if TYPE_CHECKING:
    from sona.lora.two_tier import (
        AdapterTrainingConfig,
        InsufficientEventsError,
        PersonalizedScorer,
    )

# name -> module of the names that import torch/peft, loaded on first access
_LAZY = {
    "LoRAAdapter": "sona.lora.adapter",
    "AdapterTrainingConfig": "sona.lora.two_tier",
    "InsufficientEventsError": "sona.lora.two_tier",
    "PersonalizedScorer": "sona.lora.two_tier",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DTYPES", "USER_MATRIX", "WEIGHTS_FILE", "AdapterBackend", "AdapterInfo", "AdapterRecord",
    "AdapterStore", "AdapterTrainingConfig", "DirectoryAdapterStore", "DirectoryBackend",
    "InsufficientEventsError", "LoRAAdapter", "LoRAConfig", "PersonalizedScorer",
    "SqlAdapterStore", "SqlBackend", "TrainResult", "init_base_matrix", "lora_scores",
    "train_adapter",
]
