"""Feature tables of the learned ranker: user, item and context features from training data.

The ranker is trained on generators fitted on *part* of the training data (the validation
protocol) and applied to generators refitted on *all* of it, so features must mean the
same in both regimes. Counts do not (a user has 25% fewer interactions in the fit part),
hence activity and popularity enter as percentiles and histograms as shares; generator
scores enter per-user normalised (z-score) and as rank percentiles.

Tables (rows = user or item indices of the data they were computed on):

- users: activity percentile; with demographics (ML-100K ``.user``): age, gender
  (1 = F, 0 = M), occupation code (categorical), first zip digit (region);
- items: popularity percentile; with a catalog: release year and genre indicators;
- user x item: genre affinity, the user's genre shares dotted with the item's genres;
- context (the learned-context variant): cosine between the user's hour-of-day (and
  day-of-week) histogram of events and the item's, from timestamps.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError
from sona.ranking.context import event_hour_weekday
from sona.types import IndexArray

log = logging.getLogger(__name__)

FloatMatrix = NDArray[np.float64]

#: columns of the user table, in order
USER_FEATURE_NAMES = ("user_activity_pct", "age", "gender_f", "occupation", "zip_region")


@functools.lru_cache(maxsize=4)
def _ml100k_users(data_dir: str) -> pd.DataFrame:
    from sona.data.sources import load_ml100k

    return load_ml100k(Path(data_dir) / "ml-100k").users


def load_user_side(source: str, data_dir: str = "datasets") -> pd.DataFrame:
    """Demographics of the named dataset's users (loaded once per process).

    Returns:
        ``user_id, age, gender, occupation, zip_code`` (ML-100K's ``.user`` file).

    Raises:
        ConfigError: unknown source.
    """
    if source != "ml-100k":
        raise ConfigError(f"unknown side_source {source!r}; valid: 'ml-100k'")
    return _ml100k_users(str(data_dir))


def _safe(label: str) -> str:
    """A feature-name-safe version of a label (LightGBM rejects JSON punctuation)."""
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_").lower()


def percentile(values: NDArray[np.floating]) -> FloatMatrix:
    """Rank of each value among all of them, in (0, 1] (ties share their mean rank)."""
    import scipy.stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v
    return np.asarray(scipy.stats.rankdata(v) / len(v), dtype=np.float64)


def demographics(users: IdIndex, side: pd.DataFrame | None) -> tuple[FloatMatrix, list[str]]:
    """``(n_users, 4)`` age, gender, occupation code, zip region (NaN where unknown)."""
    out = np.full((len(users), 4), np.nan)
    names = list(USER_FEATURE_NAMES[1:])
    if side is None or len(side) == 0:
        return out, names
    idx = users.numbers(side["user_id"].to_numpy(), missing="negative")
    keep = idx >= 0
    frame = side.loc[keep]
    rows = idx[keep]
    out[rows, 0] = pd.to_numeric(frame["age"], errors="coerce").to_numpy(np.float64)
    gender = frame["gender"].astype(str).str.upper()
    out[rows, 1] = np.where(gender == "F", 1.0, np.where(gender == "M", 0.0, np.nan))
    occupations = sorted(side["occupation"].astype(str).unique())
    code = {o: float(i) for i, o in enumerate(occupations)}
    out[rows, 2] = frame["occupation"].astype(str).map(code).to_numpy(np.float64)
    first = frame["zip_code"].astype(str).str[:1]
    out[rows, 3] = pd.to_numeric(first.where(first.str.isdigit()), errors="coerce").to_numpy(
        np.float64)
    return out, names


def _histograms(data: Interactions, utc_offset_hours: float) -> tuple[FloatMatrix, ...]:
    frame = data.frame
    stamps = frame["timestamp"].to_numpy(np.float64)
    known = np.isfinite(stamps)
    hours, days = event_hour_weekday(stamps[known], utc_offset_hours)
    users = frame["user_idx"].to_numpy()[known]
    items = frame["item_idx"].to_numpy()[known]
    tables = []
    for index, n in ((users, data.n_users), (items, data.n_items)):
        for bins, width in ((hours, 24), (days, 7)):
            table = np.zeros((n, width))
            np.add.at(table, (index, bins), 1.0)
            norm = np.linalg.norm(table, axis=1, keepdims=True)
            tables.append(np.divide(table, norm, out=np.zeros_like(table), where=norm > 0))
    return tuple(tables)


@dataclass
class FeatureTables:
    """Per-user and per-item tables computed from one interaction log.

    Attributes:
        user: ``(n_users, n_user_features)``; names in ``user_names``.
        item: ``(n_items, n_item_features)``; names in ``item_names``.
        user_genres: ``(n_users, n_genres)`` share of the user's items in each genre.
        item_genres: ``(n_items, n_genres)`` genre indicators.
        user_hours, user_days, item_hours, item_days: L2-normalised event histograms.
    """

    user: FloatMatrix
    user_names: list[str]
    item: FloatMatrix
    item_names: list[str]
    user_genres: FloatMatrix
    item_genres: FloatMatrix
    user_hours: FloatMatrix
    user_days: FloatMatrix
    item_hours: FloatMatrix
    item_days: FloatMatrix

    @classmethod
    def build(cls, data: Interactions, *, catalog: Catalog | None, users_side: pd.DataFrame |
              None, utc_offset_hours: float = 0.0) -> FeatureTables:
        """Compute every table from ``data`` (+ optional catalog and demographics)."""
        matrix = (data.matrix("weight") > 0).astype(np.float64)
        activity = np.asarray(matrix.sum(axis=1)).ravel()
        popularity = np.asarray(matrix.sum(axis=0)).ravel()
        demo, demo_names = demographics(data.users, users_side)
        user = np.column_stack([percentile(activity), demo])
        user_names = [USER_FEATURE_NAMES[0], *demo_names]
        item_cols = [percentile(popularity)]
        item_names = ["item_popularity_pct"]
        if catalog is not None:
            genres_csr, vocab = catalog.genre_matrix(data.items)
            item_genres = np.asarray(genres_csr.toarray(), dtype=np.float64)
            year = catalog.frame.set_index("item_id")["year"].reindex(
                data.items.ids_array).to_numpy(dtype=np.float64, na_value=np.nan)
            item_cols += [year, item_genres]
            item_names += ["item_year", *(f"genre_{_safe(g)}" for g in vocab)]
        else:
            item_genres = np.zeros((data.n_items, 0))
        counts = matrix @ sp.csr_matrix(item_genres) if item_genres.shape[1] else None
        if counts is not None:
            dense = np.asarray(counts.todense())
            total = dense.sum(axis=1, keepdims=True)
            user_genres = np.divide(dense, total, out=np.zeros_like(dense), where=total > 0)
        else:
            user_genres = np.zeros((data.n_users, 0))
        uh, ud, ih, idd = _histograms(data, utc_offset_hours)
        return cls(user, user_names, np.column_stack(item_cols), item_names, user_genres,
                   item_genres, uh, ud, ih, idd)

    def arrays(self) -> dict[str, np.ndarray]:
        """Numeric arrays for a model's saved state (names are rebuilt from the config)."""
        return {"user": self.user, "item": self.item, "user_genres": self.user_genres,
                "item_genres": self.item_genres, "user_hours": self.user_hours,
                "user_days": self.user_days, "item_hours": self.item_hours,
                "item_days": self.item_days}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], user_names: list[str],
                    item_names: list[str]) -> FeatureTables:
        """Inverse of :meth:`arrays`."""
        return cls(arrays["user"], user_names, arrays["item"], item_names,
                   arrays["user_genres"], arrays["item_genres"], arrays["user_hours"],
                   arrays["user_days"], arrays["item_hours"], arrays["item_days"])


def generator_features(normalized: list[FloatMatrix], raw: list[FloatMatrix],
                       rows: IndexArray, cols: IndexArray) -> list[NDArray[np.float64]]:
    """Per generator: the normalised score and the rank percentile (0 = best) of each pair."""
    out = []
    for norm, scores in zip(normalized, raw, strict=True):
        filled = np.where(np.isfinite(norm), scores, -np.inf)
        ranks = np.argsort(np.argsort(-filled, axis=1, kind="stable"), axis=1)
        n_ok = np.maximum(np.isfinite(norm).sum(axis=1), 1)
        out += [norm[rows, cols], ranks[rows, cols] / n_ok[rows]]
    return out


def pair_features(tables: FeatureTables, user_idx: IndexArray, rows: IndexArray,
                  cols: IndexArray, *, user_features: bool, item_features: bool,
                  context_features: bool,
                  request_hours: FloatMatrix | None = None,
                  request_days: FloatMatrix | None = None) -> list[NDArray[np.float64]]:
    """Side features of candidate pairs ``(user_idx[rows], cols)``.

    ``request_hours`` / ``request_days`` (``(len(user_idx), 24)`` / ``(..., 7)``) replace the
    users' historical histograms with a request's context (one-hot hour, weekday).
    """
    users = user_idx[rows]
    out: list[NDArray[np.float64]] = []
    if user_features:
        out += list(tables.user[users].T)
    if item_features:
        out += list(tables.item[cols].T)
        if tables.item_genres.shape[1]:
            affinity = np.einsum("ij,ij->i", tables.user_genres[users], tables.item_genres[cols])
            out.append(affinity)
    if context_features:
        hours = tables.user_hours[users] if request_hours is None else request_hours[rows]
        days = tables.user_days[users] if request_days is None else request_days[rows]
        out.append(np.einsum("ij,ij->i", hours, tables.item_hours[cols]))
        out.append(np.einsum("ij,ij->i", days, tables.item_days[cols]))
    return out


def pair_feature_names(generators: list[str], tables_user: list[str], tables_item: list[str],
                       *, user_features: bool, item_features: bool, context_features: bool,
                       has_genres: bool) -> list[str]:
    """Column names matching :func:`generator_features` + :func:`pair_features`."""
    names = [f"{g}_{kind}" for g in generators for kind in ("score", "rank_pct")]
    if user_features:
        names += tables_user
    if item_features:
        names += tables_item
        if has_genres:
            names.append("user_item_genre_affinity")
    if context_features:
        names += ["context_hour_cosine", "context_weekday_cosine"]
    return names


__all__ = ["USER_FEATURE_NAMES", "FeatureTables", "demographics", "generator_features",
           "load_user_side", "pair_feature_names", "pair_features", "percentile"]
