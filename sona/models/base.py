"""The one Recommender contract (STYLE.md §2).

Public methods take external ids and batches; subclasses implement private hooks over
indices. The id <-> index mapping happens here and nowhere else (Cornac's rule), and the
learned state follows scikit-learn's conventions: ``__init__`` only stores ``config``,
``fit`` validates and returns ``self``, learned attributes end with ``_``.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona import io
from sona.data.ids import IdIndex
from sona.data.interactions import Interactions
from sona.errors import DataError, NotFittedError
from sona.ranking.topk import topk
from sona.types import IdArray, IndexArray, Recommendations, ScoreArray

ConfigT = TypeVar("ConfigT")

#: users scored per block in ``recommend``: bounds memory at block x n_items floats
_BLOCK = 1024


class Recommender(ABC, Generic[ConfigT]):
    """Base class of every SONA model.

    Subclasses set ``config_class`` (a frozen dataclass) and implement ``_fit``,
    ``_score_users``, ``_similar_items``, ``_state`` and ``_restore``; ``_score_pairs``
    has a default built on ``_score_users``.
    """

    config_class: ClassVar[type]
    #: False for models that ignore co-occurrence (popularity): skips the checkerboard test
    learns_cooccurrence: ClassVar[bool] = True

    users_: IdIndex
    items_: IdIndex
    seen_: sp.csr_matrix

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else self.config_class()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # --- fitting -----------------------------------------------------------------------

    def fit(self, data: Interactions) -> Self:
        """Learn from ``data``, discarding any earlier fit; returns ``self``.

        Raises:
            TypeError: ``data`` is not :class:`Interactions`.
            DataError: no interactions.
        """
        if not isinstance(data, Interactions):
            raise TypeError(f"fit expects sona.data.Interactions, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError("cannot fit on empty interactions")
        for name in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, name)
        matrix = data.matrix("weight")
        self._fit(matrix, data)
        self.users_ = data.users
        self.items_ = data.items
        self.seen_ = matrix
        return self

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""
        return hasattr(self, "items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    # --- queries -----------------------------------------------------------------------

    def recommend(
        self,
        user_ids: IdArray | list[Any],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: IdArray | list[Any] | None = None,
        exclude: IdArray | list[Any] | None = None,
    ) -> Recommendations:
        """Top-``k`` items for each user, shape ``(len(user_ids), k)``.

        Args:
            user_ids: external user ids (a batch; one user is a batch of one).
            k: list length.
            exclude_seen: drop items the user interacted with in training.
            candidates: external item ids to rank among (shared by all users).
            exclude: external item ids never to return.

        Raises:
            NotFittedError: before ``fit``.
            UnknownIdError: a user or item id the model was not trained with.
            ValueError: ``k < 1`` or both ``candidates`` and ``exclude``.
        """
        self._check_fitted()
        if candidates is not None and exclude is not None:
            raise ValueError("pass either candidates or exclude, not both")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        user_idx = self.users_.numbers(user_ids)
        cand_idx = None if candidates is None else self.items_.numbers(candidates)
        excl_idx = None if exclude is None else self.items_.numbers(exclude)
        all_idx, all_scores = [], []
        for start in range(0, len(user_idx), _BLOCK):
            block = user_idx[start:start + _BLOCK]
            scores = self._score_users(block)
            seen = self.seen_[block] if exclude_seen else None
            idx, sc = topk(scores, k, exclude=seen, candidates=cand_idx, exclude_items=excl_idx)
            all_idx.append(idx)
            all_scores.append(sc)
        idx = np.concatenate(all_idx) if all_idx else np.empty((0, k), np.int64)
        sc = np.concatenate(all_scores) if all_scores else np.empty((0, k))
        return Recommendations(self.items_.ids(idx), sc)

    def similar_items(self, item_ids: IdArray | list[Any], k: int = 10) -> Recommendations:
        """The ``k`` items most similar to each query item (the item itself excluded)."""
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        item_idx = self.items_.numbers(item_ids)
        scores = np.asarray(self._similar_items(item_idx), dtype=np.float64)
        # one entry per row, built as CSR directly: the COO route cost ~56 us of a served
        # /recommendations/similar request, this ~21 us (issue 12); the same matrix
        self_mask = sp.csr_matrix(
            (np.ones(len(item_idx)), np.asarray(item_idx, np.int64),
             np.arange(len(item_idx) + 1)),
            shape=(len(item_idx), self.items_.__len__()),
        )
        idx, sc = topk(scores, k, exclude=self_mask)
        return Recommendations(self.items_.ids(idx), sc)

    def score(self, user_ids: IdArray | list[Any], item_ids: IdArray | list[Any]) -> ScoreArray:
        """One score per aligned (user, item) pair, shape ``(n,)``.

        Raises:
            ValueError: the two arrays differ in length.
            UnknownIdError: an unknown user or item id.
        """
        self._check_fitted()
        user_idx = self.users_.numbers(user_ids)
        item_idx = self.items_.numbers(item_ids)
        if len(user_idx) != len(item_idx):
            raise ValueError(f"{len(user_idx)} user ids but {len(item_idx)} item ids")
        return np.asarray(self._score_pairs(user_idx, item_idx), dtype=np.float64)

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write ``config.yaml``, ``arrays.npz`` and ``ids.parquet`` under ``path`` (no pickles)."""
        self._check_fitted()
        cls = type(self)
        config = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": _config_to_dict(self.config),
        }
        seen = self.seen_.tocsr()
        arrays = {f"state__{k}": v for k, v in self._state().items()}
        arrays.update({"seen__data": seen.data, "seen__indices": seen.indices,
                       "seen__indptr": seen.indptr})
        io.save_model_dir(path, config=config, arrays=arrays,
                          ids={"user": self.users_.ids_array, "item": self.items_.ids_array})

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model directory written by :meth:`save`.

        Called on ``Recommender`` itself, it builds whichever class the directory names.
        """
        config, arrays, ids = io.load_model_dir(path)
        target = _import_class(config["class"])
        if not issubclass(target, cls):
            raise DataError(f"directory holds a {target.__name__}, not a {cls.__name__}", path=path)
        model = target(_config_from_dict(target.config_class, config.get("params", {})))
        model.users_ = IdIndex(ids["user"], kind="user")
        model.items_ = IdIndex(ids["item"], kind="item")
        model.seen_ = sp.csr_matrix(
            (arrays["seen__data"], arrays["seen__indices"], arrays["seen__indptr"]),
            shape=(len(model.users_), len(model.items_)),
        )
        model._restore({k[len("state__"):]: v for k, v in arrays.items()
                        if k.startswith("state__")})
        return model  # type: ignore[return-value]

    # --- hooks ---------------------------------------------------------------------------

    @abstractmethod
    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        """Learn from the users x items weight matrix (``data`` for extra columns)."""

    @abstractmethod
    def _score_users(self, user_idx: IndexArray) -> NDArray[np.floating]:
        """Scores of every item for each user index, shape ``(len(user_idx), n_items)``."""

    @abstractmethod
    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.floating]:
        """Similarity of every item to each query item, shape ``(len(item_idx), n_items)``."""

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (numeric dtypes only)."""

    @abstractmethod
    def _restore(self, state: dict[str, np.ndarray]) -> None:
        """Set learned attributes from what ``_state`` returned."""

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.floating]:
        """Scores of aligned pairs; the default scores each distinct user once."""
        out = np.empty(len(user_idx), dtype=np.float64)
        uniq, inverse = np.unique(user_idx, return_inverse=True)
        for start in range(0, len(uniq), _BLOCK):
            block = uniq[start:start + _BLOCK]
            scores = np.asarray(self._score_users(block))
            sel = (inverse >= start) & (inverse < start + len(block))
            out[sel] = scores[inverse[sel] - start, item_idx[sel]]
        return out


def _config_to_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")


def _config_from_dict(cls: type, params: dict[str, Any]) -> Any:
    from sona.config import from_dict

    return from_dict(cls, params)


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"model class {path!r} cannot be imported") from exc
