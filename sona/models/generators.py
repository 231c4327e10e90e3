"""Candidate generators shared by the hybrid and the learned ranker.

A generator is any registered :class:`~sona.models.base.Recommender`, named by its
registry key and parameters (:class:`GeneratorSpec`), so a hybrid is configured in YAML
exactly like the models it combines. :class:`GeneratorSet` fits them together, scores users
and saves their learned arrays under one prefix each (``g<i>__<key>``), so the hybrid's
model directory holds everything (no nested pickles, no second directory to keep in sync).

:func:`carve_validation` is the one validation protocol of the zoo: a per-user stratified
split of the *training* data (the test split is never looked at), the users to score, and
their held-out items as a relevance matrix over the fit part's item indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.data.interactions import Interactions
from sona.data.splits import stratified_split
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.types import IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    """One candidate generator: a registered model and its parameters."""

    # label in logs, fitted weights and saved state (unique within a hybrid)
    name: str
    # key in sona.models.registry.MODELS, e.g. "als", "ease"
    model: str
    # fields of that model's config dataclass; unset fields take its defaults
    params: dict[str, Any] = field(default_factory=dict)


def default_generators() -> list[GeneratorSpec]:
    """ALS, EASE and ItemKNN with their tuned defaults (the strongest ML-100K baselines)."""
    return [GeneratorSpec("als", "als"), GeneratorSpec("ease", "ease"),
            GeneratorSpec("itemknn", "itemknn")]


def check_specs(specs: list[GeneratorSpec], *, owner: str) -> None:
    """Reject an empty list, duplicate names, and unknown models or parameters.

    Raises:
        ConfigError: naming ``<owner>.generators[i]`` and the problem.
    """
    from sona.models.registry import build_model  # the registry imports the zoo models

    if not specs:
        raise ConfigError(f"{owner}.generators: list at least one generator")
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise ConfigError(f"{owner}.generators[{i}].name {spec.name!r} is used twice")
        seen.add(spec.name)
        if spec.model in ("hybrid", "ranker"):
            raise ConfigError(f"{owner}.generators[{i}].model {spec.model!r}: a generator must "
                              "be a base model, not another ensemble")
        where = f"{owner}.generators[{i}]"
        try:
            build_model(spec.model, spec.params, where=f"{where}.params.")
        except ConfigError as exc:
            if where in str(exc):
                raise
            raise ConfigError(f"{where}.model: {exc}") from exc


class GeneratorSet:
    """Several models fitted on the same data and scored together.

    Args:
        specs: the generators, in order.
        keys: each generator's position in its owner's configuration (default 0, 1, ...),
            used as its state prefix ``g<key>__`` so a subset can be saved and restored.
    """

    def __init__(self, specs: list[GeneratorSpec], keys: list[int] | None = None) -> None:
        from sona.models.registry import build_model

        self.specs = list(specs)
        self.keys = list(range(len(self.specs))) if keys is None else [int(k) for k in keys]
        if len(self.keys) != len(self.specs):
            raise ValueError(f"{len(self.keys)} keys for {len(self.specs)} generators")
        self.models: list[Recommender[Any]] = [build_model(s.model, s.params)
                                               for s in self.specs]

    @classmethod
    def wrap(cls, specs: list[GeneratorSpec], models: list[Recommender[Any]]) -> GeneratorSet:
        """A set over models fitted elsewhere (each built from its spec, same config)."""
        out = cls(specs)
        if len(models) != len(specs):
            raise ValueError(f"{len(models)} models for {len(specs)} specs")
        out.models = list(models)
        return out

    @property
    def names(self) -> list[str]:
        """Generator names, in order."""
        return [s.name for s in self.specs]

    def fit(self, data: Interactions) -> GeneratorSet:
        """Fit every generator on ``data``; returns ``self``."""
        for spec, model in zip(self.specs, self.models, strict=True):
            log.info("fitting generator %s (%s) on %d interactions", spec.name, spec.model,
                     len(data))
            model.fit(data)
        return self

    def raw_scores(self, user_idx: IndexArray) -> list[NDArray[np.float64]]:
        """Each generator's ``(len(user_idx), n_items)`` scores, float64, in spec order."""
        return [np.asarray(m._score_users(user_idx), dtype=np.float64) for m in self.models]

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays of every generator, keys prefixed ``g<key>__``."""
        out: dict[str, np.ndarray] = {}
        for key, model in zip(self.keys, self.models, strict=True):
            out.update({f"g{key}__{k}": v for k, v in model._state().items()})
        return out

    @classmethod
    def restore(cls, specs: list[GeneratorSpec], state: dict[str, np.ndarray],
                indices: list[int], *, users: IdIndex, items: IdIndex,
                seen: sp.csr_matrix) -> GeneratorSet:
        """Rebuild generators ``indices`` of ``specs`` from :meth:`state` output.

        Every generator was fitted on the same data as its owner, so the owner's ids and
        seen matrix are theirs too.
        """
        out = cls([specs[i] for i in indices], keys=indices)
        for i, model in zip(indices, out.models, strict=True):
            prefix = f"g{i}__"
            model.users_ = users
            model.items_ = items
            model.seen_ = seen
            model._restore({k[len(prefix):]: v for k, v in state.items()
                            if k.startswith(prefix)})
        return out


class ValidationSet(NamedTuple):
    """A validation split carved from training data.

    Attributes:
        fit: the part generators are fitted on (re-indexed).
        validation: the held-out part.
        user_idx: indices in ``fit`` of the validation users that also appear in ``fit``.
        relevant: ``(len(user_idx), fit.n_items)`` CSR, 1 where the item is held out.
        n_relevant: ``(len(user_idx),)`` held-out items per user, including items that do
            not occur in ``fit`` (they count in the ideal DCG, as in the test protocol).
    """

    fit: Interactions
    validation: Interactions
    user_idx: IndexArray
    relevant: sp.csr_matrix
    n_relevant: NDArray[np.int64]


def carve_validation(data: Interactions, ratio: float = 0.75, *, seed: int = 7) -> ValidationSet:
    """Split ``data`` per user into fit / validation (Microsoft Recommenders stratified rule).

    Args:
        data: the training interactions (never the test split).
        ratio: share of each user's interactions kept for fitting, in (0, 1).
        seed: seed of the split (differs from the outer split's 42 by default, so the
            validation rows are not a function of the test rows).

    Raises:
        DataError: a part comes out empty, or no validation user appears in the fit part.
    """
    from sona.errors import DataError

    split = stratified_split(data, ratio, by="user", seed=seed)
    fit, val = split.train, split.test
    val_users = np.asarray(val.users.ids_array)
    fit_users = fit.users.numbers(val_users, missing="negative")
    keep = fit_users >= 0
    if not keep.any():
        raise DataError("no validation user appears in the fit part of the validation split",
                        path=data.source)
    user_idx = fit_users[keep]
    order = np.argsort(user_idx, kind="stable")
    user_idx = user_idx[order]
    val_user_idx = np.flatnonzero(keep)[order]
    frame = val.frame
    row_of = np.full(val.n_users, -1, dtype=np.int64)
    row_of[val_user_idx] = np.arange(len(val_user_idx))
    rows = row_of[frame["user_idx"].to_numpy()]
    cols = fit.items.numbers(frame["item_id"].to_numpy(), missing="negative")
    n_relevant = np.bincount(rows[rows >= 0], minlength=len(user_idx)).astype(np.int64)
    ok = (rows >= 0) & (cols >= 0)
    relevant = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok])),
                             shape=(len(user_idx), fit.n_items))
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    log.info("validation split: %d fit / %d held-out interactions, %d users",
             len(fit), len(val), len(user_idx))
    return ValidationSet(fit, val, user_idx, relevant, n_relevant)


__all__ = ["GeneratorSet", "GeneratorSpec", "ValidationSet", "carve_validation",
           "check_specs", "default_generators"]
