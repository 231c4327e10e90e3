"""Content-based recommender over text embeddings of the catalog (SPEC §2.4, §2.1).

Items are embedded once per fit from their catalog text (title, year, genres and linked
KG facts, :func:`sona.embeddings.catalog_texts`) by the MiniLM sentence encoder (384-d,
disk-cached) or a TF-IDF/LSA encoder. Two scoring paths share those vectors:

- ``"seeds"`` (SPEC §2.4): each user's top ``n_seeds`` positive interactions are seeds,
  scored ``rating / rating_scale`` when ``rating >= min_rating`` and ``unrated_score`` for
  unrated (implicit) interactions. For every seed a vector index returns the
  ``n_neighbors`` most similar items, excluding the seed and everything the user has seen;
  an item's score is ``Σ_seeds max(similarity, 0) · seed_score``. Items outside every
  neighbourhood score 0. A user without a qualifying interaction falls back to all of
  their interactions as seeds (each at ``unrated_score``), logged, never an empty list.
- ``"profile"`` (SPEC §2.1): the user's preference vector, exactly
  :func:`sona.profile.preference_vector` with each training interaction read as a fully
  completed viewing event carrying its rating and decayed to the last training timestamp;
  an item's score is the cosine between that vector and the item's.

Side data (the catalog and optional KG) comes from :mod:`sona.models.side`: passed to the
constructor or named by ``side_source``. The item vectors (one dimension end to end, the
encoder's) and the seeds or preference vectors are saved, so ``load`` needs no catalog.

Reference: Lops, de Gemmis & Semeraro, "Content-based Recommender Systems: State of the
Art and Trends", Recommender Systems Handbook (2011).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.embeddings import (
    EncoderConfig,
    TextEncoder,
    TfidfConfig,
    TfidfEncoder,
    catalog_texts,
)
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.export import (
    NotExportableError,
    ScorerExport,
    build_factor_export,
    probe_scores,
)
from sona.models.side import ItemSideData, resolve_side_data
from sona.profile import ViewingEvent, preference_vector
from sona.types import IndexArray

log = logging.getLogger(__name__)

#: users whose seed neighbourhoods are searched in one index call (bounds the exclusion array)
_SEARCH_BLOCK = 128


@dataclass(frozen=True, slots=True)
class ContentConfig:
    """Content-based recommender settings."""

    # text encoder: "minilm" (all-MiniLM-L6-v2, 384-d) or "tfidf" (TF-IDF + SVD)
    encoder: Literal["minilm", "tfidf"] = "minilm"
    # "seeds": SPEC §2.4 seed neighbourhoods; "profile": SPEC §2.1 preference-vector cosine
    scoring: Literal["seeds", "profile"] = "seeds"
    # seeds per user: the top positive interactions by seed score, then recency (0 = all)
    n_seeds: int = 10
    # nearest items retrieved per seed (SPEC §2.4: 20)
    n_neighbors: int = 20
    # a rated interaction is a positive seed when rating >= this (rating units)
    min_rating: float = 4.0
    # top of the rating scale: seed score = rating / rating_scale
    rating_scale: float = 5.0
    # seed score of an interaction without a rating (implicit feedback)
    unrated_score: float = 0.5
    # vector search backend: "exact" (numpy reference) or "faiss" (flat inner product)
    index: Literal["exact", "faiss"] = "exact"
    # add linked KG facts to the item texts (off: on ML-100K the award/director phrases made
    # MiniLM neighbours worse, nDCG@10 0.053 vs 0.061)
    use_kg: bool = False
    # tfidf encoder: SVD dimensions of the item vectors
    tfidf_components: int = 256
    # minilm encoder: embedding cache folder (None = in memory only)
    cache_dir: str | None = "datasets/cache/embeddings"
    # minilm encoder: texts per forward pass
    batch_size: int = 64
    # dataset whose catalog/KG is loaded on fit when none was passed as side= (None: none)
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source (ml-100k is read from <data_dir>/ml-100k)
    data_dir: str = "datasets"
    # randomness of the TF-IDF SVD
    seed: int = 42


class ContentBased(Recommender[ContentConfig]):
    """Recommends items whose text embeddings are close to what the user liked.

    Args:
        config: a :class:`ContentConfig`.
        side: catalog (+ optional KG and links) to embed; overrides ``config.side_source``.
    """

    config_class = ContentConfig
    # similarity comes from item text, not from who-liked-what
    learns_cooccurrence = False

    item_vectors_: NDArray[np.float32]
    seeds_: sp.csr_matrix
    user_vectors_: NDArray[np.float32]

    def __init__(self, config: ContentConfig | None = None, *,
                 side: ItemSideData | None = None) -> None:
        super().__init__(config)
        self.side = side
        self._vector_index: Any = None

    # --- fitting -------------------------------------------------------------------------

    def _validate(self) -> None:
        c = self.config
        if c.encoder not in ("minilm", "tfidf"):
            raise ConfigError(f"encoder must be 'minilm' or 'tfidf', got {c.encoder!r}")
        if c.scoring not in ("seeds", "profile"):
            raise ConfigError(f"scoring must be 'seeds' or 'profile', got {c.scoring!r}")
        if c.index not in ("exact", "faiss"):
            raise ConfigError(f"index must be 'exact' or 'faiss', got {c.index!r}")
        if c.n_seeds < 0 or c.n_neighbors < 1:
            raise ConfigError(f"need n_seeds >= 0 and n_neighbors >= 1, got {c.n_seeds}, "
                              f"{c.n_neighbors}")
        if c.rating_scale <= 0:
            raise ConfigError(f"rating_scale must be > 0, got {c.rating_scale}")

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        self._validate()
        side = resolve_side_data(self.side, self.config.side_source, self.config.data_dir,
                                 model="ContentBased", required=True)
        assert side is not None
        self.item_vectors_ = self._embed_items(side, data)
        if self.config.scoring == "seeds":
            self.seeds_ = self._select_seeds(data)
        else:
            self.user_vectors_ = self._preference_vectors(data)
        self._vector_index = None

    def _embed_items(self, side: ItemSideData, data: Interactions) -> NDArray[np.float32]:
        """Encoder vectors of the training items, rows in item-index order.

        Items missing from the catalog get a zero vector (similarity 0 to everything).
        """
        use_kg = self.config.use_kg and side.has_kg
        texts = catalog_texts(side.catalog, side.kg if use_kg else None,
                              side.links if use_kg else None)
        rows = data.items.numbers(side.catalog.frame["item_id"].to_numpy(), missing="negative")
        present = rows >= 0
        encoder: TextEncoder | TfidfEncoder
        if self.config.encoder == "minilm":
            encoder = TextEncoder(EncoderConfig(cache_dir=self.config.cache_dir,
                                                batch_size=self.config.batch_size,
                                                show_progress=False))
        else:
            encoder = TfidfEncoder(TfidfConfig(n_components=self.config.tfidf_components,
                                               seed=self.config.seed)).fit(texts)
        wanted = [t for t, keep in zip(texts, present, strict=True) if keep]
        encoded = encoder.encode(wanted)
        vectors = np.zeros((data.n_items, encoded.shape[1]), dtype=np.float32)
        vectors[rows[present]] = encoded
        n_missing = data.n_items - int(present.sum())
        if n_missing:
            log.warning("%d of %d training items are not in the catalog: zero content vectors",
                        n_missing, data.n_items)
        log.info("embedded %d items with %s (dim %d)", int(present.sum()), encoder.model_name,
                 encoded.shape[1])
        return vectors

    def _seed_scores(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """SPEC §2.4 seed score per interaction; NaN where it does not qualify."""
        rating = frame["rating"].to_numpy(dtype=np.float64)
        rated = ~np.isnan(rating)
        score = np.where(rated, rating / self.config.rating_scale, self.config.unrated_score)
        qualifies = (~rated | (rating >= self.config.min_rating)) & (frame["weight"] > 0)
        return np.where(qualifies, score, np.nan)

    def _select_seeds(self, data: Interactions) -> sp.csr_matrix:
        """Users x items CSR of seed scores: each user's top ``n_seeds`` positives."""
        frame = data.frame[["user_idx", "item_idx", "rating", "timestamp", "weight"]].copy()
        frame["score"] = self._seed_scores(frame)
        has_seed = frame.groupby("user_idx")["score"].transform(lambda s: s.notna().any())
        fallback = ~has_seed.to_numpy(dtype=bool)
        if fallback.any():
            n_users = frame.loc[fallback, "user_idx"].nunique()
            log.warning("%d users have no positive interaction: all their interactions are "
                        "seeds at score %.2f", n_users, self.config.unrated_score)
            frame.loc[fallback, "score"] = self.config.unrated_score
        frame = frame[frame["score"].notna()]
        frame = frame.assign(ts=frame["timestamp"].fillna(-np.inf))
        frame = frame.sort_values(["user_idx", "score", "ts", "item_idx"],
                                  ascending=[True, False, False, True], kind="stable")
        if self.config.n_seeds > 0:
            frame = frame[frame.groupby("user_idx").cumcount() < self.config.n_seeds]
        return sp.csr_matrix(
            (frame["score"].to_numpy(np.float32),
             (frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy())),
            shape=(data.n_users, data.n_items))

    def _preference_vectors(self, data: Interactions) -> NDArray[np.float32]:
        """SPEC §2.1 preference vector of every user (``sona.profile.preference_vector``)."""
        frame = data.frame
        stamps = frame["timestamp"].to_numpy(dtype=np.float64)
        stamps = np.where(np.isnan(stamps), 0.0, stamps)
        now = float(stamps.max()) if len(stamps) else 0.0
        ratings = frame["rating"].to_numpy(dtype=np.float64)
        out = np.zeros((data.n_users, self.item_vectors_.shape[1]), dtype=np.float32)
        order = np.argsort(frame["user_idx"].to_numpy(), kind="stable")
        users = frame["user_idx"].to_numpy()[order]
        items = frame["item_idx"].to_numpy()[order]
        bounds = np.flatnonzero(np.diff(users)) + 1
        for chunk in np.split(np.arange(len(order)), bounds):
            if not len(chunk):
                continue
            rows = order[chunk]
            events = [ViewingEvent(content_id=int(i), timestamp=float(t), completion_rate=1.0,
                                   rating=None if np.isnan(r) else int(round(r)))
                      for i, t, r in zip(items[chunk], stamps[rows], ratings[rows], strict=True)]
            out[users[chunk[0]]] = preference_vector(events, items[chunk].tolist(),
                                                     self.item_vectors_, now=now)
        return out

    # --- scoring -------------------------------------------------------------------------

    def _index(self) -> Any:
        if self._vector_index is None:
            ids = np.arange(len(self.item_vectors_), dtype=np.int64)
            if self.config.index == "faiss":
                from sona.search.faiss_index import FaissIndex, FaissIndexConfig

                index: Any = FaissIndex(FaissIndexConfig(kind="flat", metric="cosine"))
            else:
                from sona.search.exact import ExactIndex, ExactIndexConfig

                index = ExactIndex(ExactIndexConfig(metric="cosine"))
            index.add(ids, self.item_vectors_)
            self._vector_index = index
        return self._vector_index

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        if self.config.scoring == "profile":
            return (self.user_vectors_[user_idx] @ self.item_vectors_.T).astype(np.float64)
        out = np.zeros((len(user_idx), len(self.item_vectors_)), dtype=np.float64)
        for start in range(0, len(user_idx), _SEARCH_BLOCK):
            block = np.asarray(user_idx[start:start + _SEARCH_BLOCK])
            self._score_seed_block(block, out[start:start + len(block)])
        return out

    def _score_seed_block(self, block: IndexArray, out: NDArray[np.float64]) -> None:
        """Add ``Σ max(sim, 0)·seed_score`` over each user's seed neighbourhoods into ``out``."""
        seeds = self.seeds_[block].tocsr()
        n_per_user = np.diff(seeds.indptr)
        if seeds.nnz == 0:
            return
        query_user = np.repeat(np.arange(len(block)), n_per_user)
        seen = self.seen_[block].tocsr()
        n_seen = np.diff(seen.indptr)
        width = max(int(n_seen.max(initial=0)), 1)
        # one exclusion row per seed query: the user's seen items (the seed among them)
        excl_user = np.full((len(block), width), -1, dtype=np.int64)
        mask = np.arange(width)[None, :] < n_seen[:, None]
        excl_user[mask] = seen.indices
        k = min(self.config.n_neighbors, len(self.item_vectors_))
        recs = self._index().search(self.item_vectors_[seeds.indices], k,
                                    exclude=excl_user[query_user])
        sims = np.nan_to_num(recs.scores, nan=0.0).clip(min=0.0)
        nbrs = np.where(recs.ids < 0, 0, recs.ids)
        weights = sims * seeds.data[:, None]
        np.add.at(out, (np.repeat(query_user, k), nbrs.ravel()), weights.ravel())

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        vecs = self.item_vectors_
        return (vecs[item_idx] @ vecs.T).astype(np.float64)

    def export_scorer(self) -> ScorerExport:
        """``"profile"`` scoring: a ``factors`` graph, preference vectors times item vectors.

        ``"seeds"`` scoring cannot be one graph: it searches a vector index per seed with
        per-user exclusions. New users are folded in by serving's ALS-style ridge solve on
        the item vectors (``alpha`` 1, ridge 0.1), not by :func:`sona.profile.preference_vector`.

        Raises:
            NotExportableError: ``scoring="seeds"``.
            NotFittedError: before ``fit``.
        """
        if self.config.scoring != "profile":
            raise NotExportableError(
                type(self), f"ContentBased with scoring={self.config.scoring!r} sums "
                f"nearest-neighbour searches (n_neighbors={self.config.n_neighbors}) over each "
                "user's seed items with per-user exclusions, not one scorer graph; use "
                "scoring='profile' or serve it through the pipeline model")
        self._check_fitted()

        def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            return probe_scores(self, len(rows), user_vectors_=rows)

        return build_factor_export(reference, self.user_vectors_, self.item_vectors_)

    # --- persistence ---------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {"item_vectors": self.item_vectors_}
        if self.config.scoring == "seeds":
            seeds = self.seeds_.tocsr()
            state.update(seeds_data=seeds.data, seeds_indices=seeds.indices,
                         seeds_indptr=seeds.indptr)
        else:
            state["user_vectors"] = self.user_vectors_
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = state["item_vectors"].astype(np.float32)
        if self.config.scoring == "seeds":
            self.seeds_ = sp.csr_matrix(
                (state["seeds_data"], state["seeds_indices"], state["seeds_indptr"]),
                shape=(len(self.users_), len(self.items_)))
        else:
            self.user_vectors_ = state["user_vectors"].astype(np.float32)
        self._vector_index = None
