"""Item features the pipeline's sources share: content vectors, popularity, context stats.

Everything here depends on items (and the training log for popularity and time patterns),
never on one request, so it is computed once in :meth:`Pipeline.fit` and saved with the
pipeline. The service loads the same arrays: there is no second feature builder.

Content vectors (SPEC §2.4) come from the catalog: MiniLM sentence embeddings of the title,
genres and KG facts (``source="text"``, the bundled encoder, cached on disk), TF-IDF + SVD
(``"tfidf"``) or genre indicators (``"genres"``). Without a catalog (synthetic data),
``"interactions"`` takes the leading singular vectors of the item-user training matrix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.data.interactions import Catalog
from sona.genres import GENRES
from sona.ranking.context import ContextStats

log = logging.getLogger(__name__)

ContentSource = Literal["text", "tfidf", "genres", "interactions"]


@dataclass(frozen=True, slots=True)
class ContentConfig:
    """Where item content vectors come from."""

    # "text": MiniLM sentence embeddings; "tfidf": TF-IDF + SVD; "genres": genre indicators;
    # "interactions": SVD of the item-user training matrix (no catalog needed)
    source: ContentSource = "text"
    # sentence-transformers model for source="text" (the bundled MiniLM by default)
    encoder_model: str = "all-MiniLM-L6-v2"
    # embedding cache folder for source="text" (None = no disk cache)
    cache_dir: str | None = "datasets/cache/embeddings"
    # SVD dimensions for source="tfidf" and "interactions"
    n_components: int = 64


def unit_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    m = np.asarray(matrix, np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0).astype(np.float32)


def _aligned(catalog: Catalog, items: IdIndex) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(catalog rows, item indices) of the catalog items the model knows."""
    idx = items.numbers(catalog.frame["item_id"].to_numpy(), missing="negative")
    rows = np.flatnonzero(idx >= 0)
    return rows, idx[rows]


def text_encoder(config: ContentConfig) -> Any:
    """The sentence encoder of ``source="text"`` (:class:`sona.embeddings.TextEncoder`)."""
    from sona.embeddings import EncoderConfig, TextEncoder

    return TextEncoder(EncoderConfig(model=config.encoder_model, cache_dir=config.cache_dir,
                                     show_progress=False))


def catalog_item_texts(documents: pd.DataFrame) -> dict[str, str]:
    """Item id (string) -> text of catalog rows: the search documents' text.

    ``documents`` are search documents of catalog items
    (:func:`sona.search.documents.documents_from_items`); the text is
    :func:`sona.search.documents.document_texts`, what search embeds, so an item's text is
    defined once for search and for the pipeline's cold items.
    """
    from sona.search.documents import document_texts

    return dict(zip((str(i) for i in documents["item_id"]), document_texts(documents),
                    strict=True))


def content_vectors(
    items: IdIndex,
    config: ContentConfig = ContentConfig(),
    *,
    catalog: Catalog | None = None,
    matrix: sp.csr_matrix | None = None,
    kg: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    texts: Mapping[Any, str] | None = None,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """L2-normalised content vectors aligned to ``items`` and a description of the encoder.

    Items missing from the catalog get a zero vector (they never match on content).

    Args:
        items: the item index the vectors align to.
        config: the source of the vectors.
        catalog: item metadata (every source but "interactions").
        matrix: users x items training matrix (source "interactions").
        kg, links: knowledge-graph facts for the text encoder; optional.
        texts: item id -> text, the texts of catalog rows (:func:`catalog_item_texts`)
            for sources "text" and "tfidf" instead of the ``catalog`` frame's
            (:func:`sona.embeddings.catalog_texts`); ids absent from it get zero vectors.

    Returns:
        ``(vectors (len(items), D) float32, {"source", "model", "version", "dim", "missing"})``.

    Raises:
        ValueError: the source needs a catalog (or matrix) that was not given.
    """
    if config.source == "interactions":
        if matrix is None:
            raise ValueError("content source 'interactions' needs the training matrix")
        dense = (sp.csr_matrix(matrix).T > 0).astype(np.float64).toarray()
        u, s, _ = np.linalg.svd(dense, full_matrices=False)
        dim = min(config.n_components, len(s))
        vecs = u[:, :dim] * s[:dim]
        # the sign of a singular vector is arbitrary: fix it so refits agree exactly
        signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(dim)])
        out = unit_rows(vecs * np.where(signs == 0, 1.0, signs))
        return out, {"source": "interactions", "model": "item-user-svd", "version": str(dim),
                     "dim": int(out.shape[1]), "missing": 0}
    if catalog is None and (texts is None or config.source == "genres"):
        raise ValueError(f"content source {config.source!r} needs a catalog; use "
                         "source 'interactions' for data without one")
    info: dict[str, Any]
    if config.source == "genres":
        assert catalog is not None
        idx = _aligned(catalog, items)[1]
        genres, vocab = catalog.genre_matrix(items)
        out = unit_rows(genres.toarray())
        info = {"source": "genres", "model": "genre-indicators", "version": ",".join(vocab)}
    else:
        from sona.embeddings import TfidfConfig, TfidfEncoder, catalog_texts

        if texts is not None:
            ids = list(texts)
            idx = items.numbers(ids, missing="negative")
            keep = np.flatnonzero(idx >= 0)
            all_texts = [texts[i] for i in ids]
            idx = idx[keep]
        else:
            assert catalog is not None
            all_texts = catalog_texts(catalog, kg, links)
            keep, idx = _aligned(catalog, items)
        encoder: Any
        if config.source == "text":
            encoder = text_encoder(config)
        else:
            encoder = TfidfEncoder(TfidfConfig(n_components=config.n_components))
            encoder.fit(all_texts)
        encoded = encoder.encode([all_texts[r] for r in keep])
        out = np.zeros((len(items), encoded.shape[1]), np.float32)
        out[idx] = unit_rows(encoded)
        info = {"source": config.source, "model": encoder.model_name,
                "version": encoder.model_version}
    missing = int(len(items) - len(idx))
    if missing:
        log.warning("%d of %d items are not in the catalog: zero content vectors", missing,
                    len(items))
    info.update({"dim": int(out.shape[1]), "missing": missing})
    return out, info


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """Per-item arrays every source reads, aligned to the pipeline's item index.

    Attributes:
        vectors: ``(n_items, D)`` unit content vectors (zeros: no content).
        popularity: ``(n_items,)`` distinct training users per item.
        context: hour/weekday patterns, runtime, canonical genres, relative popularity.
        lora_base: ``(r, D)`` shared LoRA ``A`` matrix.
        lora_scaling: LoRA ``alpha / r``.
        content_info: the encoder behind ``vectors`` (source, model, version, dim, missing).
    """

    vectors: NDArray[np.float32]
    popularity: NDArray[np.float32]
    context: ContextStats
    lora_base: NDArray[np.float32]
    lora_scaling: float
    content_info: dict[str, Any]

    @property
    def n_items(self) -> int:
        """Number of items."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Content vector dimension D."""
        return int(self.vectors.shape[1])

    @property
    def lora_rank(self) -> int:
        """LoRA rank r."""
        return int(self.lora_base.shape[0])

    @property
    def genres(self) -> NDArray[np.bool_]:
        """``(n_items, len(GENRES))`` canonical genre indicators."""
        return self.context.genres

    def item_genres(self, item_idx: int) -> list[str]:
        """Canonical genre names of one item."""
        return [GENRES[c] for c in np.flatnonzero(self.context.genres[item_idx])]

    def state(self) -> dict[str, NDArray[Any]]:
        """Arrays to save (keys prefixed ``features__``)."""
        c = self.context
        return {"features__vectors": self.vectors, "features__popularity": self.popularity,
                "features__ctx_popularity": c.popularity, "features__ctx_hourly": c.hourly,
                "features__ctx_weekday": c.weekday, "features__ctx_runtime": c.runtime,
                "features__ctx_genres": c.genres, "features__lora_base": self.lora_base,
                "features__lora_scaling": np.asarray([self.lora_scaling]),
                "features__content_info": np.asarray([json.dumps(self.content_info)])}

    @classmethod
    def restore(cls, state: dict[str, NDArray[Any]]) -> ItemFeatures:
        """Rebuild from :meth:`state` output."""
        s = {k[len("features__"):]: v for k, v in state.items() if k.startswith("features__")}
        ctx = ContextStats(s["ctx_popularity"], s["ctx_hourly"], s["ctx_weekday"],
                           s["ctx_runtime"], s["ctx_genres"].astype(bool))
        return cls(s["vectors"].astype(np.float32), s["popularity"].astype(np.float32), ctx,
                   s["lora_base"].astype(np.float32), float(s["lora_scaling"][0]),
                   dict(json.loads(str(s["content_info"][0]))))


__all__ = ["ContentConfig", "ContentSource", "ItemFeatures", "catalog_item_texts",
           "content_vectors", "text_encoder", "unit_rows"]
