"""Canonical interaction log and content catalog, validated at construction.

``Interactions`` columns: ``user_id``, ``item_id`` (int or str), ``rating`` (float, NaN
when implicit), ``timestamp`` (int64 seconds since epoch, may be missing -> NaN is an
error only for temporal splits), ``weight`` (float >= 0, the implicit confidence; defaults
to 1). ``Catalog`` columns: ``item_id``, ``title``, ``year`` (Int64, may be missing),
``genres`` (tuple of strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sona import io
from sona.data.ids import IdIndex
from sona.errors import DataError

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "weight")
REQUIRED_COLUMNS = ("user_id", "item_id")


def _first_bad_row(mask: pd.Series | np.ndarray) -> int:
    positions = np.flatnonzero(np.asarray(mask))
    return int(positions[0]) if positions.size else -1


def _clean_ids(values: pd.Series, column: str, source: Any) -> pd.Series:
    if values.isna().any():
        raise DataError("missing (NaN) id", path=source, column=column,
                        row=_first_bad_row(values.isna()))
    if pd.api.types.is_float_dtype(values):
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            raise DataError("non-integer numeric id", path=source, column=column,
                            row=_first_bad_row(np.mod(values.to_numpy(), 1) != 0))
        return values.astype(np.int64)
    if pd.api.types.is_integer_dtype(values):
        return values.astype(np.int64)
    as_str = values.astype(str).str.strip()
    if (as_str == "").any():
        raise DataError("empty id", path=source, column=column, row=_first_bad_row(as_str == ""))
    numeric = pd.to_numeric(as_str, errors="coerce")
    if numeric.notna().all() and np.all(np.mod(numeric.to_numpy(), 1) == 0):
        return numeric.astype(np.int64)
    return as_str.astype(object)


def _numeric(values: pd.Series, column: str, source: Any, *, allow_nan: bool) -> pd.Series:
    converted = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = converted.isna() & values.notna()
    if bad.any():
        row = _first_bad_row(bad)
        raise DataError(f"non-numeric value {values.iloc[row]!r}", path=source, column=column,
                        row=row)
    if not allow_nan and converted.isna().any():
        raise DataError("missing value", path=source, column=column,
                        row=_first_bad_row(converted.isna()))
    return converted


@dataclass(frozen=True)
class Interactions:
    """A validated interaction log plus the user and item :class:`IdIndex` built from it.

    Build with :meth:`from_frame`; the constructor trusts its inputs.
    """

    frame: pd.DataFrame
    users: IdIndex
    items: IdIndex
    source: str | None = field(default=None, compare=False)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        users: IdIndex | None = None,
        items: IdIndex | None = None,
        source: Any = None,
    ) -> Interactions:
        """Validate a frame with canonical column names and index its ids.

        Args:
            frame: needs ``user_id`` and ``item_id``; ``rating``, ``timestamp``, ``weight``
                are optional. ``weight`` defaults to 1.0, so implicit models see binary
                data unless the caller supplies confidences.
            users, items: reuse existing indices (e.g. the train split's); ids absent from
                them raise :class:`~sona.errors.UnknownIdError`. Default: built sorted.
            source: file name used in error messages.

        Raises:
            DataError: empty frame, missing column, NaN ids, non-numeric rating/timestamp/
                weight, negative weights, or exact duplicate rows.
        """
        if frame is None or len(frame) == 0:
            raise DataError("no interactions (empty data)", path=source)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}; found {list(frame.columns)}",
                            path=source, column=missing[0])
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        src = frame.reset_index(drop=True)
        out["user_id"] = _clean_ids(src["user_id"], "user_id", source)
        out["item_id"] = _clean_ids(src["item_id"], "item_id", source)
        out["rating"] = (_numeric(src["rating"], "rating", source, allow_nan=True)
                         if "rating" in src else np.nan)
        out["timestamp"] = (_numeric(src["timestamp"], "timestamp", source, allow_nan=True)
                            if "timestamp" in src else np.nan)
        if "weight" in src:
            weight = _numeric(src["weight"], "weight", source, allow_nan=False)
            if (weight < 0).any():
                raise DataError("negative weight", path=source, column="weight",
                                row=_first_bad_row(weight < 0))
            out["weight"] = weight
        else:
            out["weight"] = 1.0
        dup = out.duplicated(keep="first")
        if dup.any():
            raise DataError("duplicate row", path=source, row=_first_bad_row(dup))
        if users is None:
            users = IdIndex.from_values(out["user_id"].to_numpy(), "user")
        if items is None:
            items = IdIndex.from_values(out["item_id"].to_numpy(), "item")
        out["user_idx"] = users.numbers(out["user_id"].to_numpy())
        out["item_idx"] = items.numbers(out["item_id"].to_numpy())
        return cls(out, users, items, None if source is None else str(source))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        """Number of users in the index (not only those with rows)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the index."""
        return len(self.items)

    def matrix(self, value: str = "weight") -> sp.csr_matrix:
        """Users x items CSR of ``value`` (``weight`` or ``rating``); repeated pairs are summed."""
        data = self.frame[value].to_numpy(np.float32)
        if np.isnan(data).any():
            raise DataError(f"column {value!r} has missing values; cannot build a matrix",
                            path=self.source, column=value)
        mat = sp.csr_matrix(
            (data, (self.frame["user_idx"].to_numpy(), self.frame["item_idx"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        mat.sum_duplicates()
        mat.sort_indices()
        return mat

    def with_frame(self, frame: pd.DataFrame, *, reindex: bool = True) -> Interactions:
        """A new log from rows of this one; ``reindex`` rebuilds the id indices."""
        cols = [c for c in INTERACTION_COLUMNS if c in frame.columns]
        if reindex:
            return Interactions.from_frame(frame[cols], source=self.source)
        return Interactions.from_frame(frame[cols], users=self.users, items=self.items,
                                       source=self.source)

    def user_items(self) -> dict[Any, set[Any]]:
        """``{user_id: set(item_ids)}`` of the log (for evaluation ground truth)."""
        grouped = self.frame.groupby("user_id", sort=True)["item_id"]
        return {u: set(v) for u, v in grouped}


def load_interactions(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
) -> Interactions:
    """Load a user's own CSV/TSV/Parquet interaction file.

    Args:
        path: the file.
        columns: maps canonical names to the file's names, e.g.
            ``{"user_id": "userId", "item_id": "movieId", "rating": "rating"}``. Columns not
            mapped keep their canonical name.
        sep: delimiter for text files (default by suffix).

    Raises:
        DataError: unreadable file, a mapped column absent from the file, or any
            validation failure of :meth:`Interactions.from_frame`.
    """
    frame = io.read_table(path, sep=sep)
    mapping = dict(columns or {})
    unknown = set(mapping) - set(INTERACTION_COLUMNS)
    if unknown:
        raise DataError(f"unknown canonical column(s) {sorted(unknown)}; "
                        f"expected some of {list(INTERACTION_COLUMNS)}", path=path)
    absent = [src for src in mapping.values() if src not in frame.columns]
    if absent:
        raise DataError(f"column {absent[0]!r} not in file; found {list(frame.columns)}",
                        path=path, column=absent[0])
    renamed = frame.rename(columns={v: k for k, v in mapping.items()})
    missing = [c for c in REQUIRED_COLUMNS if c not in renamed.columns]
    if missing:  # report the file's own header, not the empty canonical selection
        raise DataError(f"missing column(s) {missing}; found {list(frame.columns)}; "
                        f"map them with columns=", path=path, column=missing[0])
    keep = [c for c in INTERACTION_COLUMNS if c in renamed.columns]
    return Interactions.from_frame(renamed[keep], source=path)


@dataclass(frozen=True)
class Catalog:
    """Validated content catalog: one row per item."""

    frame: pd.DataFrame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, source: Any = None) -> Catalog:
        """Validate ``item_id``, ``title``, ``year``, ``genres`` (list/tuple or '|'/' ' string).

        Raises:
            DataError: empty, missing columns, NaN or duplicate item ids, non-numeric years.
        """
        if frame is None or len(frame) == 0:
            raise DataError("catalog is empty", path=source)
        missing = [c for c in ("item_id", "title") if c not in frame.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}", path=source, column=missing[0])
        src = frame.reset_index(drop=True)
        out = pd.DataFrame({"item_id": _clean_ids(src["item_id"], "item_id", source)})
        dup = out["item_id"].duplicated()
        if dup.any():
            raise DataError("duplicate item id", path=source, column="item_id",
                            row=_first_bad_row(dup))
        out["title"] = src["title"].fillna("").astype(str)
        year = (_numeric(src["year"], "year", source, allow_nan=True) if "year" in src
                else pd.Series(np.nan, index=out.index))
        out["year"] = year.round().astype("Int64")
        genres = src["genres"] if "genres" in src else pd.Series([()] * len(src))
        out["genres"] = [_as_genres(g) for g in genres]
        for extra in src.columns:
            if extra not in out.columns:
                out[extra] = src[extra]
        return cls(out)

    def __len__(self) -> int:
        return len(self.frame)

    def genre_matrix(self, items: IdIndex) -> tuple[sp.csr_matrix, list[str]]:
        """Binary items x genres matrix aligned to ``items`` (rows of unknown items are 0)."""
        vocab = sorted({g for gs in self.frame["genres"] for g in gs})
        col = {g: j for j, g in enumerate(vocab)}
        idx = items.numbers(self.frame["item_id"].to_numpy(), missing="negative")
        rows, cols = [], []
        for i, gs in zip(idx, self.frame["genres"], strict=True):
            if i >= 0:
                for g in gs:
                    rows.append(i)
                    cols.append(col[g])
        mat = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                            shape=(len(items), len(vocab)))
        return mat, vocab


def _as_genres(value: Any) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, str):
        sep = "|" if "|" in value else " "
        return tuple(g.strip() for g in value.split(sep) if g.strip())
    return tuple(str(g) for g in value)
