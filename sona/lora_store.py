"""Versioned LoRA adapter storage (SPEC §1 LoRAAdapterRecord, §2.2 footprint and retrieval).

One interface, :class:`AdapterStore`, over two :class:`AdapterBackend` implementations:

- :class:`DirectoryAdapterStore` (the default): one folder per version,
  ``<root>/<user>/<name>/v<version>/adapter_model.safetensors`` + ``metadata.json`` (+
  ``adapter_config.json`` when the adapter carries a peft ``LoraConfig``, so the folder is
  also a valid ``PeftModel.from_pretrained`` adapter directory);
- :class:`~sona.lora_sql.SqlAdapterStore`: one row per version in ``lora_adapters``, the
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
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from numpy.typing import NDArray

from sona import io
from sona.errors import DataError

log = logging.getLogger(__name__)

#: tensor name of the SPEC §2.2 per-user matrix ``B`` ``(D, rank)``
USER_MATRIX = "user_matrix"
#: storage precisions
DTYPES = ("float32", "float16")
#: files of one directory-backend version
WEIGHTS_FILE = "adapter_model.safetensors"
METADATA_FILE = "metadata.json"
PEFT_CONFIG_FILE = "adapter_config.json"

_VERSION_DIR = re.compile(r"^v(\d+)$")
_SAVE_RETRIES = 20


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
        """SPEC §2.2 ``B`` ``(D, rank)`` of an adapter saved with :meth:`AdapterStore.save`.

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


class AdapterStore:
    """Versioned adapters per (user, adapter name) over one backend.

    Args:
        location: a SQLAlchemy URL (SQL backend), a folder (directory backend) or an
            :class:`AdapterBackend`. Called with a URL or folder, ``AdapterStore(...)``
            returns a :class:`~sona.lora_sql.SqlAdapterStore` or
            :class:`DirectoryAdapterStore`.
    """

    backend: AdapterBackend

    def __new__(cls, *args: Any, **kwargs: Any) -> AdapterStore:  # noqa: D102
        if cls is AdapterStore:
            location = args[0] if args else next(iter(kwargs.values()), None)
            if location is None:
                raise TypeError("AdapterStore(location): give a SQLAlchemy URL or a folder")
            if _is_url(location):
                from sona.lora_sql import SqlAdapterStore

                cls = SqlAdapterStore
            elif not isinstance(location, AdapterBackend):
                cls = DirectoryAdapterStore
        return super().__new__(cls)

    def __init__(self, location: str | Path | AdapterBackend) -> None:
        if isinstance(location, AdapterBackend):
            self.backend = location
        elif _is_url(location):
            from sona.lora_sql import SqlBackend

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


# --- directory backend -------------------------------------------------------------------

class DirectoryBackend(AdapterBackend):
    """Adapters as safetensors files under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def version_dir(self, user_id: str, adapter_name: str, version: int) -> Path:
        """``<root>/<user>/<name>/v<version>`` (ids percent-encoded into safe names)."""
        return self.root / _segment(user_id) / _segment(adapter_name) / f"v{int(version)}"

    def write(self, info: AdapterInfo, tensors: Mapping[str, NDArray[Any]]) -> AdapterInfo:
        from safetensors.numpy import save

        payload = save(dict(tensors), metadata={"format": "pt"})
        parent = self.root / _segment(info.user_id) / _segment(info.adapter_name)
        staging = parent / f".staging-{os.getpid()}-{time.monotonic_ns()}"
        for _ in range(_SAVE_RETRIES):
            version = max(self._scan(parent), default=0) + 1
            stored = _replace(info, version=version, size_bytes=len(payload))
            io.write_bytes_atomic(staging / WEIGHTS_FILE, payload)
            io.write_json(staging / METADATA_FILE, _info_json(stored))
            if stored.config.get("peft_type"):
                io.write_json(staging / PEFT_CONFIG_FILE, stored.config)
            try:
                staging.rename(parent / f"v{version}")  # atomic; fails if the version exists
                return stored
            except OSError:
                log.debug("adapter version %d of %s taken, retrying", version, info.user_id)
        io.remove_tree(staging)
        raise DataError(f"could not allocate an adapter version under {parent}")

    def read(self, user_id: str, adapter_name: str, version: int
              ) -> tuple[AdapterInfo, dict[str, NDArray[Any]]] | None:
        from safetensors.numpy import load

        folder = self.version_dir(user_id, adapter_name, version)
        try:
            payload = io.read_bytes(folder / WEIGHTS_FILE)
            meta = io.read_json(folder / METADATA_FILE)
        except (DataError, FileNotFoundError):
            return None
        return _info_from_json(meta), load(payload)

    def versions(self, user_id: str, adapter_name: str) -> list[int]:
        return sorted(self._scan(self.root / _segment(user_id) / _segment(adapter_name)))

    def list_adapters(self, user_id: str | None) -> list[AdapterInfo]:
        users = [self.root / _segment(user_id)] if user_id is not None else \
            (sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else [])
        infos = []
        for user_dir in users:
            for name_dir in sorted(user_dir.iterdir()) if user_dir.exists() else []:
                for version in sorted(self._scan(name_dir)):
                    meta = name_dir / f"v{version}" / METADATA_FILE
                    if meta.exists():
                        infos.append(_info_from_json(io.read_json(meta)))
        return infos

    def delete(self, user_id: str, adapter_name: str | None) -> int:
        user_dir = self.root / _segment(user_id)
        targets = [user_dir / _segment(adapter_name)] if adapter_name is not None else (
            [p for p in user_dir.iterdir() if p.is_dir()] if user_dir.exists() else [])
        removed = 0
        for target in targets:
            removed += len(self._scan(target))
            io.remove_tree(target)
        if adapter_name is None:
            io.remove_tree(user_dir)
        return removed

    @staticmethod
    def _scan(folder: Path) -> list[int]:
        if not folder.exists():
            return []
        return [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_DIR.match(p.name))]


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


# --- helpers -------------------------------------------------------------------------

def _is_url(location: Any) -> bool:
    return isinstance(location, str) and "://" in location


def _segment(name: str) -> str:
    """A reversible, path-safe folder name for an id (no separators, never '.'/'..')."""
    text = quote(str(name), safe="")
    return text.replace(".", "%2E") if set(text) <= {"."} else text


def _replace(info: AdapterInfo, **changes: Any) -> AdapterInfo:
    values = {f: getattr(info, f) for f in AdapterInfo.__dataclass_fields__}
    values.update(changes)
    return AdapterInfo(**values)


def _with_tensors(info: AdapterInfo, tensors: Mapping[str, NDArray[Any]]) -> AdapterRecord:
    values = {f: getattr(info, f) for f in AdapterInfo.__dataclass_fields__}
    return AdapterRecord(**values, tensors={k: np.array(v, np.float32) for k, v in
                                            tensors.items()})


def _info_json(info: AdapterInfo) -> dict[str, Any]:
    return {"format": "sona-lora-adapter/1", **asdict(info)}


def _info_from_json(data: Mapping[str, Any]) -> AdapterInfo:
    fields = AdapterInfo.__dataclass_fields__
    return AdapterInfo(**{k: v for k, v in data.items() if k in fields})


def _jsonable(value: Any) -> Any:
    """JSON-safe copy of an adapter config (sets become sorted lists, enums their value)."""
    def default(obj: Any) -> Any:
        return sorted(obj) if isinstance(obj, set | frozenset) else getattr(obj, "value", str(obj))

    return json.loads(json.dumps(value, default=default))


__all__ = [
    "DTYPES", "USER_MATRIX", "AdapterBackend", "AdapterInfo", "AdapterRecord", "AdapterStore",
    "DirectoryAdapterStore", "DirectoryBackend",
]
