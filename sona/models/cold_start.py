"""Cold start as explicit components (SPEC §2.8): new users and new items.

New users (SPEC: cold while they have <= 5 events), in SPEC order, first that applies:

1. signup genres -> the most popular items in those genres (confidence ``0.8 - 0.02·i``);
2. demographics -> segment popularity (``0.7 - 0.02·i``): users are grouped by age band,
   zip region (first digit), gender and occupation; a segment with fewer than
   ``min_segment_users`` users backs off to a coarser one (dropping attributes from the
   end of ``attributes``), so every profile with one known attribute has a real segment;
3. global trending -> popularity over the last ``trending_days`` days of the log
   (``0.6 - 0.01·i``).

The original drew those lists as random UUIDs (SPEC §7.5); here they are counted from the
interaction log. :class:`ColdStart` is also a :class:`Recommender` for *known* users (their
segment's popularity), so it runs in experiments like any model; :meth:`ColdStart.recommend_cold`
serves profiles of users the model has never seen, and says which tier answered.

New items: :class:`ContentColdItems` scores items that have no interactions yet by the
cosine between their content embedding (:mod:`sona.embeddings`) and each user's profile
(the mean embedding of the items the user interacted with).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.errors import ConfigError, NotFittedError
from sona.genres import GENRES, movielens_genres
from sona.models.base import Recommender
from sona.models.export import NotExportableError, ScorerExport
from sona.models.ranker_features import load_user_side
from sona.models.side import ItemSideData, resolve_side_data
from sona.ranking.topk import topk
from sona.types import IdArray, IndexArray, Recommendations

log = logging.getLogger(__name__)

Attribute = Literal["age_band", "region", "gender", "occupation"]


@dataclass(frozen=True, slots=True)
class ColdProfile:
    """What is known about a new user (every field optional)."""

    # age in years
    age: int | None = None
    # "M" / "F" (ML-100K's coding)
    gender: str | None = None
    # occupation label (ML-100K's vocabulary, e.g. "student")
    occupation: str | None = None
    # postal code; its first ``region_digits`` characters are the region (SPEC: region)
    zip_code: str | None = None
    # genres chosen at signup (canonical or MovieLens labels)
    signup_genres: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ColdStartConfig:
    """Cold-start settings (SPEC §2.8)."""

    # segment attributes, most important first; backoff drops them from the end
    attributes: list[Attribute] = field(
        default_factory=lambda: ["age_band", "region", "gender", "occupation"])
    # lower edges of the age bands in years (MovieLens 1M bands)
    age_bands: list[int] = field(default_factory=lambda: [1, 18, 25, 35, 45, 50, 56])
    # leading zip-code characters that form the region
    region_digits: int = 1
    # a segment needs at least this many users, else it backs off to a coarser one
    min_segment_users: int = 10
    # global trending = popularity over the last this many days of the log
    trending_days: float = 30.0
    # dataset whose user demographics and catalog genres are loaded on fit (None: none)
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source
    data_dir: str = "datasets"


class ColdRecommendations(NamedTuple):
    """Lists for new users plus the SPEC tier that produced each row."""

    recommendations: Recommendations
    # "genres", "demographic" or "trending", one per row
    sources: list[str]


class ColdStart(Recommender[ColdStartConfig]):
    """Segment popularity for known users; SPEC tiers for profiles of new users.

    Args:
        config: a :class:`ColdStartConfig`.
        user_side: demographics (``user_id, age, gender, occupation, zip_code``);
            overrides ``side_source``.
        side: item side data (catalog genres); overrides ``side_source``.
    """

    config_class = ColdStartConfig
    learns_cooccurrence = False

    popularity_: NDArray[np.float64]
    trending_: NDArray[np.float64]
    item_genres_: NDArray[np.bool_]
    #: (n_users, n_attributes) integer attribute codes of the training users (-1 unknown)
    user_codes_: NDArray[np.int64]
    #: per backoff level L (attributes[:L]): segment keys (n_seg, L), item shares, sizes
    segment_keys_: list[NDArray[np.int64]]
    segment_shares_: list[NDArray[np.float32]]
    segment_users_: list[NDArray[np.int64]]
    #: attribute vocabularies: codes of gender and occupation labels (uint8 text, "\n" joined)
    vocab_: NDArray[np.uint8]

    def __init__(self, config: ColdStartConfig | None = None, *,
                 user_side: pd.DataFrame | None = None, side: ItemSideData | None = None) -> None:
        super().__init__(config)
        self.user_side = user_side
        self.side = side

    # --- fitting -------------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        c = self.config
        if not c.attributes or len(set(c.attributes)) != len(c.attributes):
            raise ConfigError(f"cold_start.attributes must be distinct and non-empty, got "
                              f"{c.attributes}")
        if c.min_segment_users < 1 or c.region_digits < 1 or c.trending_days <= 0:
            raise ConfigError("cold_start needs min_segment_users >= 1, region_digits >= 1 "
                              "and trending_days > 0")
        binary = (matrix > 0).astype(np.float64)
        counts = np.asarray(binary.sum(axis=0)).ravel()
        self.popularity_ = counts / max(data.n_users, 1)
        self.trending_ = _trending(data, c.trending_days)
        side = resolve_side_data(self.side, c.side_source, c.data_dir, model="cold_start",
                                 required=False)
        self.item_genres_ = (_canonical_genres(side, data) if side is not None
                             else np.zeros((data.n_items, len(GENRES)), dtype=bool))
        users = self.user_side
        if users is None and c.side_source is not None:
            users = load_user_side(c.side_source, c.data_dir)
        vocab = _vocabulary(users)
        self.vocab_ = np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8).copy()
        self._vocab = vocab
        self.user_codes_ = self._codes_for_users(data, users)
        self.segment_keys_, self.segment_shares_, self.segment_users_ = [], [], []
        for level in range(1, len(c.attributes) + 1):
            keys, shares, sizes = _segments(self.user_codes_[:, :level], binary)
            self.segment_keys_.append(keys)
            self.segment_shares_.append(shares)
            self.segment_users_.append(sizes)

    def _codes_for_users(self, data: Interactions, users: pd.DataFrame | None) -> NDArray[np.int64]:
        codes = np.full((data.n_users, len(self.config.attributes)), -1, dtype=np.int64)
        if users is None or len(users) == 0:
            return codes
        idx = data.users.numbers(users["user_id"].to_numpy(), missing="negative")
        keep = idx >= 0
        for row, profile in zip(idx[keep], _profiles(users.loc[keep]), strict=True):
            codes[row] = self._encode(profile)
        return codes

    def _encode(self, profile: ColdProfile) -> NDArray[np.int64]:
        c = self.config
        vocab = self._vocabulary()
        out = np.full(len(c.attributes), -1, dtype=np.int64)
        for j, attr in enumerate(c.attributes):
            if attr == "age_band" and profile.age is not None and profile.age > 0:
                out[j] = int(np.searchsorted(c.age_bands, profile.age, side="right")) - 1
            elif attr == "region" and profile.zip_code:
                region = str(profile.zip_code)[:c.region_digits]
                out[j] = int(region) if region.isdigit() else -1
            elif attr in ("gender", "occupation"):
                value = profile.gender if attr == "gender" else profile.occupation
                label = f"{attr}:{str(value).strip().lower()}" if value else None
                out[j] = vocab.index(label) if label in vocab else -1
        return out

    def _vocabulary(self) -> list[str]:
        if not hasattr(self, "_vocab"):
            text = self.vocab_.tobytes().decode("utf-8")
            self._vocab = text.split("\n") if text else []
        return self._vocab

    # --- scoring -------------------------------------------------------------------------

    def _segment_scores(self, codes: NDArray[np.int64]) -> tuple[NDArray[np.float64],
                                                                 NDArray[np.bool_]]:
        """Demographic popularity rows for attribute codes ``(n, n_attributes)``.

        Returns the scores and whether each row found a segment (False: no known attribute
        prefix with enough users, the caller falls back to trending).
        """
        n = len(codes)
        scores = np.zeros((n, len(self.popularity_)))
        found = np.zeros(n, dtype=bool)
        for level in range(len(self.config.attributes), 0, -1):
            keys = self.segment_keys_[level - 1]
            sizes = self.segment_users_[level - 1]
            lookup = {tuple(k): i for i, k in enumerate(keys.tolist())}
            for row in np.flatnonzero(~found):
                prefix = tuple(codes[row, :level].tolist())
                if -1 in prefix:
                    continue
                seg = lookup.get(prefix)
                if seg is not None and sizes[seg] >= self.config.min_segment_users:
                    scores[row] = self.segment_shares_[level - 1][seg]
                    found[row] = True
        return scores, found

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        scores, found = self._segment_scores(self.user_codes_[user_idx])
        # popularity breaks ties inside a segment and answers users without a segment
        return np.where(found[:, None], scores + 1e-6 * self.popularity_, self.popularity_)

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        genres = self.item_genres_.astype(np.float64)
        overlap = genres[item_idx] @ genres.T
        return overlap + 1e-6 * self.popularity_[None, :]

    def export_scorer(self) -> ScorerExport:
        """Never: scores are looked up by demographic segment, not computed from a user input.

        Raises:
            NotExportableError: always; serve it through the pipeline model.
        """
        raise NotExportableError(
            type(self), "ColdStart looks each user up in demographic segments with backoff "
            f"over {list(self.config.attributes)} (a table lookup keyed by attribute codes, not "
            "a function of a user vector); serve it through the pipeline model")

    def recommend_cold(self, profiles: list[ColdProfile], k: int = 20, *,
                       exclude: list[IdArray | list[Any]] | None = None) -> ColdRecommendations:
        """SPEC §2.8 lists for users the model has never seen.

        Args:
            profiles: one :class:`ColdProfile` per new user.
            k: list length (SPEC limit: 20).
            exclude: per profile, item ids already seen (their <= 5 events), never returned.

        Returns:
            Lists with the SPEC confidences as scores, and the tier of each row.
        """
        self._check_fitted()
        n, n_items = len(profiles), len(self.popularity_)
        if exclude is not None and len(exclude) != n:
            raise ValueError(f"{len(exclude)} exclusion lists for {n} profiles")
        codes = np.vstack([self._encode(p) for p in profiles]) if n else np.zeros((0, 1))
        demo, found = self._segment_scores(codes.astype(np.int64))
        scores = np.empty((n, n_items))
        sources = []
        for row, profile in enumerate(profiles):
            wanted = movielens_genres(profile.signup_genres)
            if wanted:
                cols = [GENRES.index(g) for g in wanted]
                match = self.item_genres_[:, cols].any(axis=1)
                scores[row] = np.where(match, self.popularity_, -np.inf)
                sources.append("genres")
            elif found[row]:
                scores[row] = demo[row] + 1e-6 * self.popularity_
                sources.append("demographic")
            else:
                scores[row] = self.trending_
                sources.append("trending")
        seen = None
        if exclude is not None:
            ex_rows = np.concatenate([np.full(len(e), i, dtype=np.int64)
                                      for i, e in enumerate(exclude)] or [np.zeros(0, int)])
            ex_cols = np.concatenate([self.items_.numbers(e, missing="negative")
                                      for e in exclude] or [np.zeros(0, int)])
            keep = ex_cols >= 0
            seen = sp.csr_matrix((np.ones(int(keep.sum())), (ex_rows[keep], ex_cols[keep])),
                                 shape=(n, n_items))
        idx, _ = topk(scores, k, exclude=seen)
        base = {"genres": (0.8, 0.02), "demographic": (0.7, 0.02), "trending": (0.6, 0.01)}
        position = np.arange(k)
        conf = np.vstack([base[s][0] - base[s][1] * position for s in sources]) if n \
            else np.zeros((0, k))
        conf = np.where(idx >= 0, conf, np.nan)
        return ColdRecommendations(Recommendations(self.items_.ids(idx), conf), sources)

    # --- persistence ---------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {
            "popularity": self.popularity_, "trending": self.trending_,
            "item_genres": self.item_genres_, "user_codes": self.user_codes_,
            "vocab": self.vocab_}
        for level, (keys, shares, sizes) in enumerate(zip(
                self.segment_keys_, self.segment_shares_, self.segment_users_, strict=True)):
            state.update({f"keys{level}": keys, f"shares{level}": shares,
                          f"sizes{level}": sizes})
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.popularity_ = state["popularity"]
        self.trending_ = state["trending"]
        self.item_genres_ = state["item_genres"].astype(bool)
        self.user_codes_ = state["user_codes"]
        self.vocab_ = state["vocab"]
        n_levels = len(self.config.attributes)
        self.segment_keys_ = [state[f"keys{i}"] for i in range(n_levels)]
        self.segment_shares_ = [state[f"shares{i}"] for i in range(n_levels)]
        self.segment_users_ = [state[f"sizes{i}"] for i in range(n_levels)]


def _profiles(users: pd.DataFrame) -> list[ColdProfile]:
    ages = pd.to_numeric(users["age"], errors="coerce")
    return [ColdProfile(age=None if pd.isna(a) else int(a), gender=g, occupation=o,
                        zip_code=z)
            for a, g, o, z in zip(ages, users["gender"].astype(str),
                                  users["occupation"].astype(str),
                                  users["zip_code"].astype(str), strict=True)]


def _vocabulary(users: pd.DataFrame | None) -> list[str]:
    if users is None:
        return []
    labels = {f"gender:{str(v).strip().lower()}" for v in users["gender"].dropna()}
    labels |= {f"occupation:{str(v).strip().lower()}" for v in users["occupation"].dropna()}
    return sorted(labels)


def _segments(codes: NDArray[np.int64], binary: sp.csr_matrix
              ) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """Segments of users with fully known ``codes``: keys, item shares, user counts."""
    known = (codes >= 0).all(axis=1)
    if not known.any():
        return (np.zeros((0, codes.shape[1]), np.int64),
                np.zeros((0, binary.shape[1]), np.float32), np.zeros(0, np.int64))
    keys, inverse = np.unique(codes[known], axis=0, return_inverse=True)
    members = sp.csr_matrix((np.ones(int(known.sum())), (inverse.ravel(),
                                                         np.flatnonzero(known))),
                            shape=(len(keys), binary.shape[0]))
    sizes = np.asarray(members.sum(axis=1)).ravel().astype(np.int64)
    shares = np.asarray((members @ binary).todense()) / sizes[:, None]
    return keys.astype(np.int64), shares.astype(np.float32), sizes


def _trending(data: Interactions, days: float) -> NDArray[np.float64]:
    stamps = data.frame["timestamp"].to_numpy(np.float64)
    items = data.frame["item_idx"].to_numpy()
    known = np.isfinite(stamps)
    if not known.any():
        return np.bincount(items, minlength=data.n_items).astype(np.float64) / data.n_users
    recent = known & (stamps >= np.nanmax(stamps) - days * 86400.0)
    counts = np.bincount(items[recent], minlength=data.n_items).astype(np.float64)
    overall = np.bincount(items, minlength=data.n_items).astype(np.float64)
    # all-time popularity breaks ties among items equally (un)popular recently
    return counts + overall / (overall.max() + 1.0)


def _canonical_genres(side: ItemSideData, data: Interactions) -> NDArray[np.bool_]:
    frame = side.catalog.frame
    idx = data.items.numbers(frame["item_id"].to_numpy(), missing="negative")
    out = np.zeros((data.n_items, len(GENRES)), dtype=bool)
    col = {g: j for j, g in enumerate(GENRES)}
    for i, labels in zip(idx, frame["genres"], strict=True):
        if i >= 0:
            for g in movielens_genres(labels):
                out[i, col[g]] = True
    return out


class ContentColdItems:
    """Scores new items (no interactions yet) for users by content similarity.

    A user's profile is the L2-normalised mean of the embeddings of the items they
    interacted with; a new item scores the cosine between its embedding and the profile.
    Every input is an array (embeddings from :class:`sona.embeddings.TextEncoder` or any
    other encoder with the same dimension for warm and new items).
    """

    profiles_: NDArray[np.float64]

    def fit(self, matrix: sp.csr_matrix, item_vectors: NDArray[np.floating]) -> ContentColdItems:
        """Build user profiles from a users x warm-items matrix and warm-item vectors.

        Raises:
            ValueError: ``item_vectors`` rows do not match the matrix's items.
        """
        vectors = _unit(np.asarray(item_vectors, dtype=np.float64))
        if vectors.shape[0] != matrix.shape[1]:
            raise ValueError(f"{vectors.shape[0]} item vectors for {matrix.shape[1]} items")
        binary = (matrix > 0).astype(np.float64)
        self.profiles_ = _unit(np.asarray(binary @ vectors))
        return self

    def score(self, user_idx: IndexArray, new_item_vectors: NDArray[np.floating]
              ) -> NDArray[np.float64]:
        """Cosine of each user's profile with each new item, ``(len(user_idx), n_new)``."""
        if not hasattr(self, "profiles_"):
            raise NotFittedError("ContentColdItems is not fitted; call fit() first")
        new = _unit(np.asarray(new_item_vectors, dtype=np.float64))
        if new.shape[1] != self.profiles_.shape[1]:
            raise ValueError(f"new item vectors have dimension {new.shape[1]}, profiles "
                             f"{self.profiles_.shape[1]}")
        return self.profiles_[np.asarray(user_idx)] @ new.T


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


__all__ = ["ColdProfile", "ColdRecommendations", "ColdStart", "ColdStartConfig",
           "ContentColdItems"]
