"""The only module that opens files: tables, YAML, JSON, npz and model directories.

Everything else in SONA receives arrays and data frames. Errors reading user files are
turned into :class:`~sona.errors.DataError` naming the file, never a bare pandas traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sona.errors import DataError

PathLike = str | Path


def md5sum(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: PathLike, *, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file into a frame.

    The format comes from the suffix (``.parquet``/``.pq``, ``.tsv``, else CSV); ``sep``
    overrides the delimiter of text files.

    Raises:
        DataError: the file is missing, empty, or cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=p)
    if p.is_dir():
        raise DataError("expected a file, got a directory", path=p)
    if p.stat().st_size == 0:
        raise DataError("file is empty", path=p)
    try:
        if p.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(p)
        else:
            tabbed = p.suffix.lower() in {".tsv", ".tab"}
            delim = sep if sep is not None else ("\t" if tabbed else ",")
            frame = pd.read_csv(p, sep=delim)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot parse table: {first}", path=p) from exc
    if frame.empty:
        raise DataError("table has no rows", path=p)
    return frame


def read_atomic(path: PathLike) -> pd.DataFrame:
    """Read a RecBole atomic file (tab-separated, ``name:type`` headers) into a frame.

    ``token`` columns stay strings, ``float`` columns become floats, ``token_seq`` stays a
    space-separated string. Column names drop the ``:type`` suffix.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=p)
    try:
        with p.open(encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split("\t")
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text", path=p) from exc
    names, dtypes = [], {}
    for field in header:
        name, _, kind = field.partition(":")
        if not kind:
            raise DataError(f"header field {field!r} lacks ':type'", path=p, row=0)
        names.append(name)
        dtypes[name] = "float64" if kind == "float" else "string"
    try:
        frame = pd.read_csv(p, sep="\t", header=0, names=names, dtype=dtypes,
                            keep_default_na=False, na_values={n: [""] for n in names},
                            quoting=3, encoding="utf-8")
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"cannot parse atomic file: {str(exc).splitlines()[0]}", path=p) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas made the extra leading fields an index
        raise DataError(f"first data row has more fields than the {len(names)} in the header",
                        path=p, row=1)
    return frame


def read_yaml(path: PathLike) -> Any:
    """Parse a YAML file; a syntax error becomes a DataError naming file and line."""
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=p)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        raise DataError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=p, row=row) from exc


def write_yaml(path: PathLike, data: Any) -> None:
    """Write ``data`` as block-style YAML, keys in insertion order."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def write_json(path: PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON (numpy scalars converted)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=_json_default) + "\n",
                          encoding="utf-8")


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def read_json(path: PathLike) -> Any:
    """Parse a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_text(path: PathLike, text: str) -> None:
    """Write a UTF-8 text file, creating parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def extract_zip_members(archive: PathLike, prefix: str, dest: PathLike) -> list[Path]:
    """Extract the members of ``archive`` under ``prefix`` flat into ``dest``."""
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                target = out_dir / Path(member).name
                target.write_bytes(zf.read(member))
                written.append(target)
    return written


# --- model directories ---------------------------------------------------------------

def save_model_dir(
    path: PathLike,
    *,
    config: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    ids: Mapping[str, np.ndarray],
) -> None:
    """Write a model directory: ``config.yaml``, ``arrays.npz`` and ``ids.parquet``.

    ``ids`` maps a kind ("user", "item") to its id array; ids are stored as strings with
    their original dtype recorded in ``config.yaml`` so the round trip is exact. No pickles.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; refusing to pickle")
    np.savez(out / "arrays.npz", allow_pickle=False,
             **{k: np.asarray(v) for k, v in arrays.items()})
    kinds: list[str] = []
    values: list[str] = []
    dtypes: dict[str, str] = {}
    for kind, arr in ids.items():
        arr = np.asarray(arr)
        dtypes[kind] = "int64" if arr.dtype.kind in "iu" else "str"
        kinds.extend([kind] * len(arr))
        values.extend(str(x) for x in arr)
    pd.DataFrame({"kind": kinds, "id": values}).to_parquet(out / "ids.parquet", index=False)
    write_yaml(out / "config.yaml", {**dict(config), "id_dtypes": dtypes})


def load_model_dir(
    path: PathLike,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read what :func:`save_model_dir` wrote: ``(config, arrays, ids)``."""
    src = Path(path)
    for name in ("config.yaml", "arrays.npz", "ids.parquet"):
        if not (src / name).exists():
            raise DataError(f"model directory lacks {name}", path=src)
    config = read_yaml(src / "config.yaml")
    dtypes = config.pop("id_dtypes", {})
    with np.load(src / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    frame = pd.read_parquet(src / "ids.parquet")
    ids: dict[str, np.ndarray] = {}
    for kind, dtype in dtypes.items():
        vals = frame.loc[frame["kind"] == kind, "id"].to_numpy()
        ids[kind] = vals.astype(np.int64) if dtype == "int64" else vals.astype(str).astype(object)
    return config, arrays, ids


# --- npz caches ----------------------------------------------------------------------

def read_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file (``allow_pickle=False``); ``{}`` when absent.

    Raises:
        DataError: the file exists but is not a readable npz archive.
    """
    p = Path(path)
    if not p.exists():
        return {}
    try:
        with np.load(p, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read npz archive: {exc}", path=p) from exc


def write_npz_atomic(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to ``path`` via a temporary file and rename, so readers never see half.

    Object arrays are refused (no pickles).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; refusing to pickle")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, p)


def write_parquet(path: PathLike, frame: pd.DataFrame) -> None:
    """Write ``frame`` as Parquet (list columns stay lists), creating parent folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def write_table(path: PathLike, frame: pd.DataFrame) -> None:
    """Write ``frame`` in the format :func:`read_table` reads back, chosen by suffix.

    ``.parquet``/``.pq`` as Parquet, ``.tsv``/``.tab`` tab-separated, anything else CSV; the
    file is written next to its final name and renamed, so a reader never sees half a file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    if p.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, sep="\t" if p.suffix.lower() in {".tsv", ".tab"} else ",",
                     index=False)
    os.replace(tmp, p)


@contextlib.contextmanager
def file_lock(path: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block.

    Used by caches that several processes read-modify-write (the embedding npz).
    """
    import fcntl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_lines(path: PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file (JSON-lines readers).

    Raises:
        DataError: the file is missing.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=p)
    return [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` via a temporary file and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def read_bytes(path: PathLike) -> bytes:
    """The bytes of a file.

    Raises:
        DataError: the file is missing.
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=p) from None


def remove_tree(path: PathLike) -> int:
    """Delete a folder and everything below it; returns the number of files removed."""
    import shutil

    p = Path(path)
    if not p.exists():
        return 0
    count = sum(1 for f in p.rglob("*") if f.is_file())
    shutil.rmtree(p)
    return count
