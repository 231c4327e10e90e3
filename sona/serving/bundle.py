"""Item-side serving data exported next to the ONNX graphs: content vectors, genres, context.

Everything here is computed once at export time from the catalog and the training log, so
the serving hot path only indexes precomputed arrays (no pandas per request):

- content vectors ``(n_items, D)``: MiniLM text embeddings (``sona.embeddings``), TF-IDF/LSA,
  or L2-normalised genre indicators; they feed the SPEC §2.1 preference vector, the LoRA
  adapter and the content-based candidate source;
- the item x genre indicator matrix (mood and signup-genre candidates, genre affinities);
- per time-of-day window item popularity from interaction timestamps (SPEC §2.6 windows:
  morning 6-12, afternoon 12-18, evening 18-24, night 0-6, UTC hours).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona import io
from sona.data.ids import IdIndex
from sona.data.interactions import Catalog, Interactions
from sona.errors import DataError
from sona.genres import GENRES, map_genre

log = logging.getLogger(__name__)

#: file naming an exported bundle's contents (its presence marks a finished export)
MANIFEST = "manifest.json"

#: SPEC §2.6 time-of-day windows, [start hour, end hour) in UTC
TIME_WINDOWS: dict[str, tuple[int, int]] = {
    "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (0, 6),
}


@dataclass(frozen=True, slots=True)
class ContentConfig:
    """Where item content vectors come from."""

    # "text": MiniLM sentence embeddings; "tfidf": TF-IDF + SVD; "genres": genre indicators
    source: Literal["text", "tfidf", "genres"] = "text"
    # sentence-transformers model for source="text" (the bundled MiniLM by default)
    encoder_model: str = "all-MiniLM-L6-v2"
    # embedding cache folder for source="text" (None = no disk cache)
    cache_dir: str | None = "datasets/cache/embeddings"
    # SVD dimensions for source="tfidf"
    tfidf_components: int = 128


def _unit_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=np.float64),
                     where=norms > 0).astype(np.float32)


def _aligned(catalog: Catalog, items: IdIndex) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(catalog rows, item indices) of the catalog items the model knows."""
    idx = items.numbers(catalog.frame["item_id"].to_numpy(), missing="negative")
    rows = np.flatnonzero(idx >= 0)
    return rows, idx[rows]


def content_vectors(
    catalog: Catalog,
    items: IdIndex,
    config: ContentConfig = ContentConfig(),
    *,
    kg: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """L2-normalised content vectors aligned to ``items`` and a description of the encoder.

    Items missing from the catalog get a zero vector (they never match on content).

    Returns:
        ``(vectors (len(items), D) float32, {"source", "model", "version", "dim", "missing"})``.
    """
    rows, idx = _aligned(catalog, items)
    if config.source == "genres":
        genres, vocab = catalog.genre_matrix(items)
        raw = genres.toarray().astype(np.float64)
        info: dict[str, Any] = {"source": "genres", "model": "genre-indicators",
                                "version": ",".join(vocab)}
        out = _unit_rows(raw)
    else:
        from sona.embeddings import (
            EncoderConfig,
            TextEncoder,
            TfidfConfig,
            TfidfEncoder,
            catalog_texts,
        )

        texts = catalog_texts(catalog, kg, links)
        encoder: Any
        if config.source == "text":
            encoder = TextEncoder(EncoderConfig(model=config.encoder_model,
                                                cache_dir=config.cache_dir, show_progress=False))
            encoded = encoder.encode([texts[r] for r in rows])
        else:
            encoder = TfidfEncoder(TfidfConfig(n_components=config.tfidf_components))
            encoder.fit(texts)
            encoded = encoder.encode([texts[r] for r in rows])
        out = np.zeros((len(items), encoded.shape[1]), np.float32)
        out[idx] = _unit_rows(encoded)
        info = {"source": config.source, "model": encoder.model_name,
                "version": encoder.model_version}
    missing = int(len(items) - len(idx))
    if missing:
        log.warning("%d of %d model items are not in the catalog: zero content vectors",
                    missing, len(items))
    info.update({"dim": int(out.shape[1]), "missing": missing})
    return out, info


def genre_table(catalog: Catalog, items: IdIndex) -> tuple[sp.csr_matrix, list[str]]:
    """Binary ``(len(items), n_genres)`` matrix over canonical genres (SPEC §1 order).

    Catalog labels are mapped with :func:`sona.genres.map_genre` (``"Sci-Fi"`` -> sci_fi,
    ``"Children's"`` -> family, ``"Film-Noir"`` -> crime + mystery); labels without a
    canonical genre (``unknown``) are dropped. Only genres some item has get a column.
    """
    raw, vocab = catalog.genre_matrix(items)
    mapped = [map_genre(label) for label in vocab]
    present = {g for gs in mapped for g in gs}
    names = [g for g in GENRES if g in present]
    col = {g: j for j, g in enumerate(names)}
    rows, cols = [], []
    coo = raw.tocoo()
    for r, c in zip(coo.row, coo.col, strict=True):
        for genre in mapped[c]:
            rows.append(r)
            cols.append(col[genre])
    mat = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                        shape=(len(items), len(names)))
    mat.data[:] = 1.0  # two labels mapping to one genre summed to 2
    return mat, names


def time_of_day_popularity(data: Interactions, items: IdIndex) -> NDArray[np.float32]:
    """Interactions per item in each :data:`TIME_WINDOWS` window, shape ``(4, len(items))``.

    Rows follow the order of :data:`TIME_WINDOWS`; interactions without a timestamp or with
    an item the model does not know are skipped.
    """
    frame = data.frame
    ts = frame["timestamp"].to_numpy(np.float64)
    idx = items.numbers(frame["item_id"].to_numpy(), missing="negative")
    keep = np.isfinite(ts) & (idx >= 0)
    hours = ((ts[keep] // 3600) % 24).astype(np.int64)
    out = np.zeros((len(TIME_WINDOWS), len(items)), np.float32)
    for w, (start, end) in enumerate(TIME_WINDOWS.values()):
        sel = (hours >= start) & (hours < end)
        out[w] = np.bincount(idx[keep][sel], minlength=len(items)).astype(np.float32)
    return out


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """The manifest of an exported bundle.

    Raises:
        DataError: the folder has no manifest (not exported, or an export in progress).
    """
    path = Path(bundle) / MANIFEST
    if not path.exists():
        raise DataError("not an exported SONA bundle (no manifest.json)", path=bundle)
    return dict(io.read_json(path))


__all__ = [
    "MANIFEST", "TIME_WINDOWS", "ContentConfig", "content_vectors", "genre_table",
    "read_manifest",
    "time_of_day_popularity",
]
