"""Versioned LoRA adapter storage (SPEC §1 LoRAAdapterRecord, §2.2 footprint and retrieval).

One interface, :class:`AdapterStore`, over two :class:`AdapterBackend` implementations:

- :class:`DirectoryAdapterStore` (the default, :mod:`sona.lora.directory`): one folder per version,
  ``<root>/<user>/<name>/v<version>/adapter_model.safetensors`` + ``metadata.json`` (+
  ``adapter_config.json`` when the adapter carries a peft ``LoraConfig``, so the folder is
  also a valid ``PeftModel.from_pretrained`` adapter directory);
- :class:`SqlAdapterStore` (:mod:`sona.lora.sql`): one row per version in ``lora_adapters``, the
  tensors' raw little-endian bytes in a BLOB and their names and shapes in a JSON column.

An adapter is a mapping of named tensors: the SPEC §2.2 user matrix ``B`` (saved with
:meth:`AdapterStore.save`, tensor :data:`USER_MATRIX`) or a peft state dict (saved with
:meth:`AdapterStore.save_tensors`). Tensors are stored as float32 or float16 (``dtype``) and
always come back as float32. ``size_bytes`` is the exact size of what holds the weights: the
safetensors file, or the BLOB. Saving allocates version ``max + 1`` atomically (a unique
constraint in SQL, an atomic folder rename on disk), so concurrent trainers never overwrite
each other.

``AdapterStore(location)`` picks the backend: a SQLAlchemy URL (``sqlite:///...``,
``postgresql+psycopg://...``) opens the SQL store, anything else is a directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from sona.errors import DataError
from sona.lora.backend import DTYPES, USER_MATRIX, AdapterBackend, AdapterInfo, AdapterRecord
from sona.lora.directory import DirectoryBackend
from sona.lora.sql import SqlBackend


class AdapterStore:
    """Versioned adapters per (user, adapter name) over one backend.

    Args:
        location: a SQLAlchemy URL (SQL backend), a folder (directory backend) or an
            :class:`AdapterBackend`. Called with a URL or folder, ``AdapterStore(...)``
            returns a :class:`SqlAdapterStore` or
            :class:`DirectoryAdapterStore`.
    """

    backend: AdapterBackend

    def __new__(cls, *args: Any, **kwargs: Any) -> AdapterStore:  # noqa: D102
        if cls is AdapterStore:
            location = args[0] if args else next(iter(kwargs.values()), None)
            if location is None:
                raise TypeError("AdapterStore(location): give a SQLAlchemy URL or a folder")
            if _is_url(location):
                cls = SqlAdapterStore
            elif not isinstance(location, AdapterBackend):
                cls = DirectoryAdapterStore
        return super().__new__(cls)

    def __init__(self, location: str | Path | AdapterBackend) -> None:
        if isinstance(location, AdapterBackend):
            self.backend = location
        elif _is_url(location):
            self.backend = SqlBackend(str(location))
        else:
            self.backend = DirectoryBackend(location)

    def save_tensors(self, user_id: str, tensors: Mapping[str, Any], *,
                     adapter_name: str = "default", rank: int, scaling: float,
                     training_iterations: int = 0, base_model_version: str = "",
                     metrics: Mapping[str, float] | None = None, dtype: str = "float32",
                     config: Mapping[str, Any] | None = None) -> AdapterRecord:
        """Store named tensors as a new version (max + 1) and return the stored record.

        Raises:
            ValueError: an unknown ``dtype``, no tensors, or an empty user/adapter name.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if not tensors:
            raise ValueError("an adapter needs at least one tensor")
        if not str(user_id) or not adapter_name:
            raise ValueError("user_id and adapter_name must be non-empty")
        stored = {str(k): np.ascontiguousarray(np.asarray(v, np.float32), dtype=dtype)
                  for k, v in tensors.items()}
        info = AdapterInfo(
            user_id=str(user_id), adapter_name=adapter_name, version=0, rank=int(rank),
            scaling_factor=float(scaling), training_iterations=int(training_iterations),
            last_trained_time=time.time(), size_bytes=0,
            base_model_version=str(base_model_version),
            metrics={k: float(v) for k, v in (metrics or {}).items()}, dtype=dtype,
            config=_jsonable(dict(config or {})))
        return _with_tensors(self.backend.write(info, stored), stored)

    def save(self, user_id: str, user_matrix: NDArray[np.float32], *, scaling: float,
             training_iterations: int, base_model_version: str, metrics: dict[str, float],
             adapter_name: str = "default", dtype: str = "float32") -> AdapterRecord:
        """Store a SPEC §2.2 user matrix ``B`` ``(D, rank)`` as a new version."""
        matrix = np.asarray(user_matrix)
        if matrix.ndim != 2:
            raise ValueError(f"user matrix B must be 2-D (D, rank), got shape {matrix.shape}")
        return self.save_tensors(
            user_id, {USER_MATRIX: matrix}, adapter_name=adapter_name, rank=matrix.shape[1],
            scaling=scaling, training_iterations=training_iterations,
            base_model_version=base_model_version, metrics=metrics, dtype=dtype)

    def get(self, user_id: str, version: int, adapter_name: str = "default") -> AdapterRecord:
        """A specific version.

        Raises:
            DataError: no such version.
        """
        found = self.backend.read(str(user_id), adapter_name, int(version))
        if found is None:
            raise DataError(f"no LoRA adapter {adapter_name!r} version {version} "
                            f"for user {user_id!r}")
        return _with_tensors(*found)

    def latest(self, user_id: str, adapter_name: str = "default") -> AdapterRecord | None:
        """The newest version, or None when the user has none."""
        found = self.backend.read_latest(str(user_id), adapter_name)
        return None if found is None else _with_tensors(*found)

    def load(self, user_id: str, adapter_name: str = "default",
             version: int | None = None) -> AdapterRecord:
        """The given version, or the latest one when ``version`` is None.

        Raises:
            DataError: the user has no such adapter (version).
        """
        if version is not None:
            return self.get(user_id, version, adapter_name)
        record = self.latest(user_id, adapter_name)
        if record is None:
            raise DataError(f"no LoRA adapter {adapter_name!r} for user {user_id!r}")
        return record

    def metadata(self, user_id: str, adapter_name: str = "default",
                 version: int | None = None) -> AdapterInfo:
        """Metadata of a version (latest when None) without reading the weights.

        Raises:
            DataError: no such adapter (version).
        """
        infos = [i for i in self.backend.list_adapters(str(user_id))
                 if i.adapter_name == adapter_name and (version is None or i.version == version)]
        if not infos:
            raise DataError(f"no LoRA adapter {adapter_name!r}"
                            f"{'' if version is None else f' version {version}'} "
                            f"for user {user_id!r}")
        return max(infos, key=lambda i: i.version)

    def versions(self, user_id: str, adapter_name: str = "default") -> list[int]:
        """Stored version numbers, ascending."""
        return self.backend.versions(str(user_id), adapter_name)

    def list_adapters(self, user_id: str | None = None) -> list[AdapterInfo]:
        """Metadata of every stored version (of ``user_id`` only when given)."""
        return self.backend.list_adapters(None if user_id is None else str(user_id))

    def delete(self, user_id: str, adapter_name: str | None = None) -> int:
        """Delete every version of ``user_id``'s adapters (of one name when given);
        returns the number of versions removed."""
        return self.backend.delete(str(user_id), adapter_name)

    def stats(self) -> dict[str, float]:
        """``{"adapters", "users", "total_bytes", "mean_bytes"}`` over all stored versions."""
        return self.backend.stats()


class DirectoryAdapterStore(AdapterStore):
    """:class:`AdapterStore` on a :class:`DirectoryBackend` (the default backend).

    Args:
        root: base folder (created on the first save).
    """

    backend: DirectoryBackend

    def __init__(self, root: str | Path) -> None:
        super().__init__(DirectoryBackend(root))

    @property
    def root(self) -> Path:
        """The base folder."""
        return self.backend.root

    def version_dir(self, user_id: str, adapter_name: str, version: int) -> Path:
        """The folder of one version (``adapter_model.safetensors`` + ``metadata.json``)."""
        return self.backend.version_dir(str(user_id), adapter_name, version)


class SqlAdapterStore(AdapterStore):
    """:class:`AdapterStore` on a :class:`~sona.lora.sql.SqlBackend`.

    Args:
        url: SQLAlchemy URL.
    """

    backend: SqlBackend

    def __init__(self, url: str) -> None:
        super().__init__(SqlBackend(url))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return self.backend.engine


def _is_url(location: Any) -> bool:
    return isinstance(location, str) and "://" in location


def _with_tensors(info: AdapterInfo, tensors: Mapping[str, NDArray[Any]]) -> AdapterRecord:
    values = {f: getattr(info, f) for f in AdapterInfo.__dataclass_fields__}
    return AdapterRecord(**values, tensors={k: np.array(v, np.float32) for k, v in
                                            tensors.items()})


def _jsonable(value: Any) -> Any:
    """JSON-safe copy of an adapter config (sets become sorted lists, enums their value)."""
    def default(obj: Any) -> Any:
        return sorted(obj) if isinstance(obj, set | frozenset) else getattr(obj, "value", str(obj))

    return json.loads(json.dumps(value, default=default))


__all__ = ["AdapterStore", "DirectoryAdapterStore", "SqlAdapterStore"]
