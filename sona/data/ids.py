"""IdIndex: the one place where external ids become contiguous indices and back.

Follows lenskit's ``Vocabulary``: ids are unique, kept in first-seen (or given) order,
compared by content, and an unknown id is an error unless the caller asks for ``-1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from sona.errors import UnknownIdError
from sona.types import PAD_IDX, IdArray, IndexArray, pad_value


class IdIndex:
    """Bijection between external ids (int or str) and indices ``0..n-1``.

    Args:
        ids: the distinct external ids, in index order. Duplicates raise ``ValueError``.
        kind: what the ids name ("user", "item"), used in error messages.
    """

    __slots__ = ("_ids", "_index", "kind")

    def __init__(self, ids: Iterable[Any], kind: str = "item") -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray | pd.Index) else ids)
        if arr.dtype.kind in "OUS":
            arr = arr.astype(str).astype(object)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.size:
            raise TypeError(f"{kind} ids must be integers or strings, got dtype {arr.dtype}")
        else:
            arr = arr.astype(np.int64)
        index = pd.Index(arr)
        if not index.is_unique:
            dup = index[index.duplicated()][:5].tolist()
            raise ValueError(f"duplicate {kind} ids: {dup}")
        self._ids = arr
        self._index = index
        self.kind = kind

    @classmethod
    def from_values(cls, values: Iterable[Any], kind: str = "item") -> IdIndex:
        """Index of the distinct values, sorted (so two runs on shuffled data agree)."""
        arr = pd.unique(np.asarray(list(values) if not isinstance(values, np.ndarray) else values))
        return cls(np.sort(arr), kind=kind)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdIndex) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash((self.kind, len(self._ids)))

    def __contains__(self, item: Any) -> bool:
        return item in self._index

    def __repr__(self) -> str:
        return f"IdIndex(kind={self.kind!r}, n={len(self)}, dtype={self._ids.dtype})"

    @property
    def ids_array(self) -> IdArray:
        """All ids in index order (a read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def is_integer(self) -> bool:
        """Whether ids are integers (else strings)."""
        return self._ids.dtype.kind in "iu"

    @property
    def pad(self) -> Any:
        """The padding id for this index's dtype."""
        return pad_value(self._ids.dtype)

    def _coerce(self, ids: Any) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if self.is_integer and arr.dtype.kind in "OUS" and arr.size:
            try:
                arr = arr.astype(np.int64)
            except (TypeError, ValueError, OverflowError):  # an id beyond int64: unknown
                return arr
        if not self.is_integer and arr.dtype.kind not in "O":
            arr = arr.astype(str).astype(object)
        return arr

    def numbers(
        self, ids: Any, missing: Literal["error", "negative"] = "error"
    ) -> IndexArray:
        """Indices of ``ids`` (any shape, returned flattened to 1-D).

        Raises:
            UnknownIdError: an id is not in the index and ``missing="error"``.
        """
        arr = self._coerce(ids).ravel()
        if self.is_integer and arr.dtype.kind in "OUS" and arr.size:
            # some ids are not integers: they are unknown, the integer ones still resolve
            # (one bad id must not make a whole batch look unknown)
            ints = np.zeros(len(arr), dtype=np.int64)
            ok = np.zeros(len(arr), dtype=bool)
            for i, value in enumerate(arr):
                try:
                    ints[i], ok[i] = int(value), True
                except (TypeError, ValueError, OverflowError):
                    continue
            idx = np.full(len(arr), -1, dtype=np.int64)
            if ok.any():
                idx[ok] = self._index.get_indexer(ints[ok])
        else:
            idx = self._index.get_indexer(arr).astype(np.int64)
        if missing == "error" and (idx < 0).any():
            raise UnknownIdError(self.kind, arr[idx < 0].tolist())
        return idx

    def number(self, id_: Any) -> int:
        """Index of one id; raises :class:`UnknownIdError` if absent."""
        return int(self.numbers([id_])[0])

    def ids(self, idx: Any) -> IdArray:
        """External ids at ``idx`` (any shape kept); ``PAD_IDX`` (-1) maps to the pad id."""
        arr = np.asarray(idx, dtype=np.int64)
        if arr.size and (arr.max(initial=-1) >= len(self) or arr.min(initial=0) < PAD_IDX):
            raise IndexError(f"{self.kind} index out of range 0..{len(self) - 1}")
        out = self._ids[np.where(arr < 0, 0, arr)] if len(self) else np.full(arr.shape, self.pad)
        if (arr < 0).any():
            out = out.astype(object) if not self.is_integer else out.copy()
            out[arr < 0] = self.pad
        return out

    def id(self, idx: int) -> Any:
        """External id at one index."""
        value = self._ids[idx]
        return value.item() if hasattr(value, "item") else value
