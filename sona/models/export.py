"""How a model exports to ONNX: the :class:`Exportable` protocol (STYLE.md §11).

Every model says how it becomes a servable scorer graph by implementing
``export_scorer() -> ScorerExport``: the torch module of its graph
(:mod:`sona.models.onnx_graphs`), the graph's input, a Python reference to check the graph
against, a generator of random inputs for that check, and the arrays and metadata the
serving bundle needs. Export code (:mod:`sona.serving.export_onnx`) calls
:func:`scorer_export` and never probes a model's private attributes. A model that cannot
be one scorer graph (a blend of generators, a learned ranker over pooled candidates, a
random walk) raises :class:`NotExportableError` from ``export_scorer`` with the reason, and
promotion skips it.

The ``build_*`` helpers below assemble a :class:`ScorerExport` for the four graph kinds,
so each model's ``export_scorer`` is a few lines naming its own arrays. The reference of a
graph is always the model's own ``_score_users`` on a shallow copy whose per-user state is
replaced by the synthetic inputs (:func:`probe_scores`): parity then compares the graph
with the code that produced the leaderboard numbers, not with a second formula.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.errors import SonaError

if TYPE_CHECKING:  # torch loads when a graph is built, not when a model module is imported
    import torch

    from sona.models.base import Recommender

#: the scorer graph families a pipeline source can be (``manifest.json`` ``graphs.<source>.kind``)
ScorerKind = Literal["factors", "towers", "item_item", "popularity"]
#: Python scores of a batch of graph inputs, ``(B, input_dim) -> (B, n_items)``
Reference = Callable[[NDArray[np.float32]], NDArray[np.floating]]
#: ``(rng, n) -> (n, input_dim)`` float32 graph inputs for a parity check
Draw = Callable[[np.random.Generator, int], NDArray[np.float32]]


@dataclass(frozen=True, slots=True)
class ScorerExport:
    """How one fitted model becomes a scorer graph ``input (B, input_dim) -> scores (B, n)``.

    Attributes:
        kind: graph family; tells serving how to build inputs for known and new users.
        module: torch module of the graph (item-side arrays are constants inside it).
        input_name: name of the graph's single input (``user_factors``, ``user_embedding``
            or ``user_items``).
        input_dim: width of that input (factors, or ``n_items`` for interaction rows).
        reference: the model's own scores for a batch of graph inputs.
        random_inputs: ``(rng, n)`` -> ``(n, input_dim)`` float32 inputs for parity checks.
        arrays: arrays the bundle stores for serving (``user_factors``, ``item_factors``,
            ``user_proj``); empty for item-item and popularity graphs.
        meta: JSON-safe facts serving needs (fold-in ``alpha``/``regularization``,
            ``has_bias``, ``binary_inputs``).
    """

    kind: ScorerKind
    module: torch.nn.Module
    input_name: str
    input_dim: int
    reference: Reference
    random_inputs: Draw
    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]


class NotExportableError(SonaError):
    """A model that cannot be exported as one ONNX scorer graph; the message says why.

    Args:
        model: the model class (or its name).
        reason: why, and what to export or serve instead.
    """

    def __init__(self, model: type | str, reason: str) -> None:
        self.model_class = model if isinstance(model, str) else model.__name__
        self.reason = reason
        super().__init__(f"{self.model_class} cannot be exported to ONNX: {reason}")


@runtime_checkable
class Exportable(Protocol):
    """A model that declares its ONNX scorer graph (or raises :class:`NotExportableError`)."""

    def export_scorer(self) -> ScorerExport:
        """The scorer graph, its reference and serving arrays of this fitted model.

        Raises:
            NotFittedError: before ``fit``.
            NotExportableError: the model cannot be one scorer graph (the message says why).
        """


def scorer_export(model: object) -> ScorerExport:
    """The :class:`ScorerExport` of ``model``, through its :class:`Exportable` protocol.

    Raises:
        NotExportableError: ``model`` does not implement ``export_scorer``, or its
            ``export_scorer`` says it cannot be exported.
        NotFittedError: the model is not fitted.
        TypeError: ``export_scorer`` returned something other than a :class:`ScorerExport`.
    """
    if not isinstance(model, Exportable):
        raise NotExportableError(type(model), "it does not implement export_scorer() "
                                 "(the sona.models.export.Exportable protocol)")
    export = model.export_scorer()
    if not isinstance(export, ScorerExport):
        raise TypeError(f"{type(model).__name__}.export_scorer() returned "
                        f"{type(export).__name__}, not a ScorerExport")
    return export


# --- helpers for the models' export_scorer ----------------------------------------------

def probe_scores(model: Recommender[Any], n_users: int, **state: Any) -> NDArray[np.floating]:
    """``model._score_users`` for ``n_users`` synthetic users described by ``state``.

    A shallow copy of ``model`` gets the per-user learned attributes in ``state`` (e.g.
    ``user_factors_`` with ``n_users`` rows, or ``seen_``) and scores users ``0..n_users-1``;
    ``model`` itself is untouched.
    """
    probe = copy.copy(model)
    for name, value in state.items():
        setattr(probe, name, value)
    return np.asarray(probe._score_users(np.arange(n_users)))


def _normal_draw(dim: int, std: float) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
        return rng.normal(0.0, std, (n, dim)).astype(np.float32)

    return draw


def multi_hot_draw(seen: sp.csr_matrix) -> Draw:
    """Random binary interaction rows as dense as ``seen`` (at least 1 %), none empty."""
    n_users, n_items = seen.shape
    density = max(seen.nnz / max(n_users * n_items, 1), 0.01)

    def draw(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
        rows = (rng.random((n, n_items)) < density).astype(np.float32)
        rows[np.arange(n), rng.integers(0, n_items, n)] = 1.0
        return rows

    return draw


def build_factor_export(reference: Reference, user_factors: NDArray[np.floating],
                        item_factors: NDArray[np.floating],
                        item_bias: NDArray[np.floating] | None = None, *, alpha: float = 1.0,
                        regularization: float = 0.1) -> ScorerExport:
    """A ``factors`` export: ``user_factors (B, f) -> U·Vᵀ (+ b)``.

    Args:
        reference: the model's scores for rows of user factors.
        user_factors: ``(n_users, f)`` learned user factors (stored for known users; their
            spread sets the random parity inputs).
        item_factors: ``(n_items, f)``.
        item_bias: ``(n_items,)`` or None.
        alpha, regularization: confidence slope and ridge of serving's ALS-style fold-in
            of users the model was not trained on.
    """
    from sona.models.onnx_graphs import FactorScorer

    users = np.asarray(user_factors, np.float32)
    items = np.asarray(item_factors, np.float32)
    bias = None if item_bias is None else np.asarray(item_bias, np.float32)
    return ScorerExport(
        "factors", FactorScorer(items, bias), "user_factors", items.shape[1], reference,
        _normal_draw(items.shape[1], float(users.std()) or 0.1),
        {"user_factors": users, "item_factors": items},
        {"alpha": float(alpha), "regularization": float(regularization),
         "has_bias": bias is not None})


def build_tower_export(reference: Reference, user_embeddings: NDArray[np.floating],
                       user_proj: NDArray[np.floating], item_vectors: NDArray[np.floating],
                       item_bias: NDArray[np.floating]) -> ScorerExport:
    """A ``towers`` export: ``user_embedding (B, f) -> (e·Wᵀ)·Vᵀ + b``.

    The user tower's projection ``W`` runs in the graph, so a LoRA adapter on it applies to
    the graph's input side; new users are folded in ALS-style on the item tower outputs
    (``alpha`` 1, ``regularization`` 0.1) and mapped back through ``W``.
    """
    from sona.models.onnx_graphs import TowerScorer

    embeddings = np.asarray(user_embeddings, np.float32)
    proj = np.asarray(user_proj, np.float32)
    items = np.asarray(item_vectors, np.float32)
    return ScorerExport(
        "towers", TowerScorer(proj, items, np.asarray(item_bias, np.float32)), "user_embedding",
        items.shape[1], reference, _normal_draw(items.shape[1], float(embeddings.std()) or 0.1),
        {"user_factors": embeddings, "item_factors": items, "user_proj": proj},
        {"alpha": 1.0, "regularization": 0.1, "has_bias": True})


def build_item_item_export(model: Recommender[Any], weights: NDArray[np.floating], *,
                           binary: bool) -> ScorerExport:
    """An ``item_item`` export: ``user_items (B, n) -> X·W`` with a dense ``(n, n)`` ``W``.

    The reference is ``model._score_users`` with the random rows as its interactions.
    """
    from sona.models.onnx_graphs import ItemItemScorer

    dense = np.asarray(weights, np.float32)
    return ScorerExport("item_item", ItemItemScorer(dense), "user_items", dense.shape[0],
                        _rows_reference(model), multi_hot_draw(model.seen_), {},
                        {"binary_inputs": bool(binary)})


def build_popularity_export(model: Recommender[Any],
                            item_scores: NDArray[np.floating]) -> ScorerExport:
    """A ``popularity`` export: ``user_items (B, n) -> `` the item scores on every row."""
    from sona.models.onnx_graphs import PopularityScorer

    scores = np.asarray(item_scores, np.float64)
    return ScorerExport("popularity", PopularityScorer(scores), "user_items", len(scores),
                        _rows_reference(model), multi_hot_draw(model.seen_), {},
                        {"binary_inputs": True})


def _rows_reference(model: Recommender[Any]) -> Reference:
    def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
        return probe_scores(model, len(rows), seen_=sp.csr_matrix(rows))

    return reference


__all__ = [
    "Draw", "Exportable", "NotExportableError", "Reference", "ScorerExport", "ScorerKind",
    "build_factor_export", "build_item_item_export", "build_popularity_export",
    "build_tower_export", "multi_hot_draw", "probe_scores", "scorer_export",
]
