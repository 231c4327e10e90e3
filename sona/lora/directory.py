"""Directory backend of the LoRA adapter store: one folder per adapter version.

``<root>/<user>/<name>/v<version>/adapter_model.safetensors`` + ``metadata.json`` (+
``adapter_config.json`` when the adapter carries a peft ``LoraConfig``, so the folder is also a
valid ``PeftModel.from_pretrained`` adapter directory). A version is written to a staging
folder and renamed into place; the rename fails when the version exists, so concurrent
trainers retry with the next one instead of overwriting each other.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from numpy.typing import NDArray

from sona import io
from sona.errors import DataError
from sona.lora.backend import SAVE_RETRIES, AdapterBackend, AdapterInfo, replace_info

log = logging.getLogger(__name__)

#: files of one directory-backend version
WEIGHTS_FILE = "adapter_model.safetensors"
METADATA_FILE = "metadata.json"
PEFT_CONFIG_FILE = "adapter_config.json"

_VERSION_DIR = re.compile(r"^v(\d+)$")


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
        for _ in range(SAVE_RETRIES):
            version = max(self._scan(parent), default=0) + 1
            stored = replace_info(info, version=version, size_bytes=len(payload))
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


def _segment(name: str) -> str:
    """A reversible, path-safe folder name for an id (no separators, never '.'/'..')."""
    text = quote(str(name), safe="")
    return text.replace(".", "%2E") if set(text) <= {"."} else text


def _info_json(info: AdapterInfo) -> dict[str, Any]:
    return {"format": "sona-lora-adapter/1", **asdict(info)}


def _info_from_json(data: Mapping[str, Any]) -> AdapterInfo:
    fields = AdapterInfo.__dataclass_fields__
    return AdapterInfo(**{k: v for k, v in data.items() if k in fields})


__all__ = ["METADATA_FILE", "PEFT_CONFIG_FILE", "WEIGHTS_FILE", "DirectoryBackend"]
