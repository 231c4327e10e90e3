"""What a LoRA adapter store holds and what each storage backend implements.

An adapter is a mapping of named tensors plus :class:`AdapterInfo` metadata (SPEC §1
LoRAAdapterRecord). :class:`AdapterBackend` is the storage interface; its implementations are
:class:`~sona.lora.directory.DirectoryBackend` and :class:`~sona.lora.sql.SqlBackend`, and
:class:`~sona.lora.store.AdapterStore` builds the public API on top. This module sits below all
three, so the backends never import the store that chooses between them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.errors import DataError

#: tensor name of the SPEC §2.2 per-user matrix ``B`` ``(D, rank)``
USER_MATRIX = "user_matrix"
#: storage precisions
DTYPES = ("float32", "float16")
#: attempts at allocating version ``max + 1`` before a save gives up (concurrent trainers)
SAVE_RETRIES = 20


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """Metadata of one stored adapter version (no weights)."""

    user_id: str  # owner: a user id, or e.g. "segment:age=25-34" for a segment adapter
    adapter_name: str  # adapter kind per owner ("default", "user", "segment", ...)
    version: int  # 1, 2, ... per (user_id, adapter_name)
    rank: int  # LoRA rank r
    scaling_factor: float  # alpha / r
    training_iterations: int  # optimiser steps of the training call
    last_trained_time: float  # Unix seconds of the save
    size_bytes: int  # bytes holding the weights (safetensors file or BLOB)
    base_model_version: str  # the tier-1 model the adapter was trained against
    metrics: dict[str, float]  # training metrics (loss, events_used, ms, ...)
    dtype: str = "float32"  # storage precision of the tensors
    config: dict[str, Any] = field(default_factory=dict)  # adapter config (peft LoraConfig)


@dataclass(frozen=True, slots=True)
class AdapterRecord(AdapterInfo):
    """One stored adapter version with its tensors (float32 in memory)."""

    tensors: dict[str, NDArray[np.float32]] = field(default_factory=dict)

    @property
    def user_matrix(self) -> NDArray[np.float32]:
        """SPEC §2.2 ``B`` ``(D, rank)`` of an adapter saved with ``AdapterStore.save``.

        Raises:
            DataError: the adapter has no :data:`USER_MATRIX` tensor (e.g. a peft adapter).
        """
        if USER_MATRIX not in self.tensors:
            raise DataError(f"adapter {self.adapter_name!r} v{self.version} of user "
                            f"{self.user_id!r} holds {sorted(self.tensors)}, not a "
                            f"{USER_MATRIX!r}")
        return self.tensors[USER_MATRIX]


class AdapterBackend(ABC):
    """What a storage backend implements; :class:`AdapterStore` adds the public API."""

    @abstractmethod
    def write(self, info: AdapterInfo, tensors: Mapping[str, NDArray[Any]]) -> AdapterInfo:
        """Store a new version (``info.version`` is ignored: max + 1 is allocated) and
        return the info as stored (version and size_bytes set)."""

    @abstractmethod
    def read(self, user_id: str, adapter_name: str, version: int
             ) -> tuple[AdapterInfo, dict[str, NDArray[Any]]] | None:
        """Info and stored tensors of one version, None when absent."""

    @abstractmethod
    def versions(self, user_id: str, adapter_name: str) -> list[int]:
        """Stored version numbers, ascending."""

    @abstractmethod
    def list_adapters(self, user_id: str | None) -> list[AdapterInfo]:
        """Metadata of every stored version (of ``user_id`` only when given)."""

    @abstractmethod
    def delete(self, user_id: str, adapter_name: str | None) -> int:
        """Delete versions of ``user_id`` (of one adapter name when given); returns count."""

    def read_latest(self, user_id: str, adapter_name: str
                    ) -> tuple[AdapterInfo, dict[str, NDArray[Any]]] | None:
        """The newest version, None when there is none."""
        for version in reversed(self.versions(user_id, adapter_name)):
            found = self.read(user_id, adapter_name, version)  # None: deleted meanwhile
            if found is not None:
                return found
        return None

    def stats(self) -> dict[str, float]:
        """``{"adapters", "users", "total_bytes", "mean_bytes"}`` over all stored versions."""
        infos = self.list_adapters(None)
        total = sum(i.size_bytes for i in infos)
        return {"adapters": len(infos), "users": len({i.user_id for i in infos}),
                "total_bytes": int(total), "mean_bytes": total / len(infos) if infos else 0.0}



def replace_info(info: AdapterInfo, **changes: Any) -> AdapterInfo:
    """A copy of ``info`` (as a plain :class:`AdapterInfo`, no tensors) with ``changes``."""
    values = {f: getattr(info, f) for f in AdapterInfo.__dataclass_fields__}
    values.update(changes)
    return AdapterInfo(**values)


__all__ = [
    "DTYPES", "SAVE_RETRIES", "USER_MATRIX", "AdapterBackend", "AdapterInfo", "AdapterRecord",
    "replace_info",
]
