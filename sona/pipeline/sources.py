"""Candidate sources of the pipeline: each scores every item for a batch of user states.

SPEC §2.7 blends four sources: collaborative, content-based, graph-based and context.
Here each is one class with one ``scores(...) -> (scores (B, n), applies (B,))`` method:

- :class:`ModelSource` wraps any registered model that declares its ONNX scorer
  (:mod:`sona.models.export`): ALS as the collaborative source, LightGCN as the graph
  source. Users the model was trained on feed their learned inputs (factors or their
  interaction row); users it never saw are folded in from their events.
- :class:`ContentSource` scores ``preference · item vector`` and the LoRA term
  ``clamp(pᵀ·B·A·xᵢ·s, -1, 1)`` (SPEC §2.2) in one graph.
- the context source is :func:`sona.ranking.context.context_scores` (rules, no graph).

Every heavy product goes through a *graph*: a callable ``inputs -> outputs``. Offline the
graphs are the models' own Python references; the service swaps in ONNX Runtime sessions
of the exported graphs (checked for parity at export). Nothing else differs between the
two, which is what makes the served lists equal the evaluated ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from sona.models.base import Recommender
from sona.pipeline.features import ItemFeatures
from sona.pipeline.state import UserState

Matrix = NDArray[np.float32]
#: a graph: named float32 inputs -> tuple of outputs (numpy reference or ONNX session)
Graph = Callable[[dict[str, NDArray[Any]]], list[NDArray[Any]]]

#: source names in blend order and the SPEC recommendation_type each one labels
SOURCES: tuple[str, ...] = ("collaborative", "content_based", "graph_based", "context")
LABELS: dict[str, str] = {"collaborative": "collaborative", "content_based": "content_based",
                          "graph_based": "graph_based", "context": "context_aware"}


class ModelSource:
    """A fitted model as a candidate source, scored through its exported scorer graph.

    Args:
        name: source name (``collaborative`` or ``graph_based``).
        model: the fitted model; it declares its scorer through ``export_scorer``.
    """

    def __init__(self, name: str, model: Recommender[Any]) -> None:
        from sona.models.export import scorer_export

        self.name = name
        self.model = model
        self.export = scorer_export(model)

    @property
    def input_name(self) -> str:
        """Name of the scorer graph's input."""
        return self.export.input_name

    def reference_graph(self) -> Graph:
        """The model's own Python scorer as a graph (the offline path)."""
        ref = self.export.reference

        def run(feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
            return [np.asarray(ref(feeds[self.export.input_name]), np.float32)]

        return run

    def inputs(self, states: Sequence[UserState]) -> tuple[Matrix, NDArray[np.bool_]]:
        """Scorer inputs ``(B, input_dim)`` and which users have any.

        A user the model was trained on and who has no stored events feeds their learned
        input (factors or interaction row); a user with stored events is folded in over
        training items plus event items; an unknown user over their event items.
        """
        arrays, meta = self.export.arrays, self.export.meta
        out = np.zeros((len(states), self.export.input_dim), np.float32)
        applies = np.zeros(len(states), bool)
        known = np.array([s.user_idx >= 0 for s in states], bool)
        if known.any():
            idx = np.array([s.user_idx for s in states if s.user_idx >= 0], np.int64)
            if "user_factors" in arrays:
                out[known] = arrays["user_factors"][idx]
            else:
                rows = sp.csr_matrix(self.model.seen_)[idx]
                if meta.get("binary_inputs", True):
                    rows = (rows > 0).astype(np.float32)
                out[known] = rows.toarray()
            applies[known] = True
        # events stored since training (served viewing) are folded in with the history, the
        # standard way to personalise at serve time: without it a known user's new views
        # would reach only the content source (issue 10, `sona bench lora`)
        n_items = self.model.seen_.shape[1]
        for i, s in enumerate(states):
            # cold catalog items (indices past the model's items) are unknown to the model
            watched = s.watched if s.user_idx >= 0 else s.event_items
            watched = watched[watched < n_items]
            if len(s.event_items) and len(watched):
                out[i] = self.fold_in(watched)
                applies[i] = True
        return out, applies

    def fold_in(self, item_idx: NDArray[np.int64]) -> Matrix:
        """Scorer input ``(input_dim,)`` of a user the model never saw, from watched items.

        Item-item and popularity scorers take the interaction row as is; factor models
        solve the ALS user step ``(VᵀV + α·V_sᵀV_s + λI)·u = (1 + α)·Σ v_s`` over the
        watched items ``s`` (two-tower models then map ``u`` back through the projection).
        """
        arrays, meta = self.export.arrays, self.export.meta
        if "item_factors" not in arrays:
            row = np.zeros(self.export.input_dim, np.float32)
            row[item_idx] = 1.0
            return row
        v = np.asarray(arrays["item_factors"], np.float64)
        vs = v[item_idx]
        alpha, reg = float(meta.get("alpha", 1.0)), float(meta.get("regularization", 0.1))
        lhs = v.T @ v + alpha * vs.T @ vs + reg * np.eye(v.shape[1])
        user = np.linalg.solve(lhs, (1.0 + alpha) * vs.sum(axis=0))
        if "user_proj" in arrays:  # two-tower: the graph's input sits before user_proj
            user = np.linalg.lstsq(np.asarray(arrays["user_proj"], np.float64), user,
                                   rcond=None)[0]
        return user.astype(np.float32)

    def scores(self, states: Sequence[UserState],
               graph: Graph) -> tuple[Matrix, NDArray[np.bool_]]:
        """Raw scores ``(B, n_items)`` and which users the source applies to."""
        inputs, applies = self.inputs(states)
        if not applies.any():
            return np.zeros((len(states), self.model.seen_.shape[1]), np.float32), applies
        (scores,) = graph({self.export.input_name: inputs})
        return np.asarray(scores, np.float32), applies


class ContentScorer(torch.nn.Module):
    """Content similarity ``p·Xᵀ`` and the LoRA score of every item (the ONNX content graph).

    Args:
        item_vectors: ``(n, D)`` content embeddings (unit rows or zeros).
        base: shared LoRA ``A`` ``(r, D)``.
        scaling: LoRA ``alpha / r``.
    """

    items_t: torch.Tensor
    projected: torch.Tensor

    def __init__(self, item_vectors: NDArray[np.floating], base: NDArray[np.floating],
                 scaling: float) -> None:
        super().__init__()
        items_t, projected = content_buffers(item_vectors, base, scaling)
        self.register_buffer("items_t", torch.from_numpy(items_t))
        self.register_buffer("projected", torch.from_numpy(projected))

    def forward(self, preference: torch.Tensor,
                lora_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        content = preference @ self.items_t
        u = torch.bmm(preference.unsqueeze(1), lora_b).squeeze(1)  # (B, r)
        lora = torch.clamp(u @ self.projected, -1.0, 1.0)
        return content, lora


class ContentRows(torch.nn.Module):
    """:class:`ContentScorer`'s arithmetic with the item matrices as inputs (the ONNX
    ``content_rows`` graph): scores rows added after export, e.g. cold catalog items."""

    def forward(self, preference: torch.Tensor, lora_b: torch.Tensor, items_t: torch.Tensor,
                projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        content = preference @ items_t
        u = torch.bmm(preference.unsqueeze(1), lora_b).squeeze(1)  # (B, r)
        lora = torch.clamp(u @ projected, -1.0, 1.0)
        return content, lora


def content_buffers(item_vectors: NDArray[np.floating], base: NDArray[np.floating],
                    scaling: float) -> tuple[Matrix, Matrix]:
    """``Xᵀ (D, n)`` and ``s·A·Xᵀ (r, n)``, float32 (computed in float64 once)."""
    x = np.asarray(item_vectors, np.float64)
    projected = scaling * (np.asarray(base, np.float64) @ x.T)
    return np.ascontiguousarray(x.T, np.float32), np.ascontiguousarray(projected, np.float32)


class ContentSource:
    """Preference-vector similarity and the LoRA term, one graph call per batch."""

    name = "content_based"

    def __init__(self, features: ItemFeatures) -> None:
        self.features = features

    def reference_graph(self) -> Graph:
        """The numpy content graph (the offline path; ONNX parity is checked against it)."""
        f = self.features
        items_t, projected = content_buffers(f.vectors, f.lora_base, f.lora_scaling)

        def run(feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
            return rows_reference({**feeds, "items_t": items_t, "projected": projected})

        return run

    def module(self) -> ContentScorer:
        """The torch module exported as ``content.onnx``."""
        f = self.features
        return ContentScorer(f.vectors, f.lora_base, f.lora_scaling)

    def scores(self, states: Sequence[UserState],
               graph: Graph) -> tuple[Matrix, Matrix, NDArray[np.bool_], NDArray[np.bool_]]:
        """``(content (B, n), lora (B, n), content applies (B,), lora applies (B,))``."""
        prefs, adapters, applies, has_lora = self.feeds(states)
        content, lora = graph({"preference": prefs, "lora_b": adapters})
        return (np.asarray(content, np.float32), np.asarray(lora, np.float32), applies,
                has_lora)

    def row_scores(self, states: Sequence[UserState], graph: Graph,
                   buffers: tuple[Matrix, Matrix]) -> tuple[Matrix, Matrix]:
        """``(content (B, m), lora (B, m))`` of extra rows through the ``content_rows``
        graph; ``buffers``: their ``content_buffers`` ``(Xᵀ, s·A·Xᵀ)``."""
        prefs, adapters, _, _ = self.feeds(states)
        content, lora = graph({"preference": prefs, "lora_b": adapters,
                               "items_t": buffers[0], "projected": buffers[1]})
        return np.asarray(content, np.float32), np.asarray(lora, np.float32)

    def feeds(self, states: Sequence[UserState]) -> tuple[Matrix, NDArray[np.float32],
                                                          NDArray[np.bool_],
                                                          NDArray[np.bool_]]:
        """Graph inputs of ``states``: ``(preferences (B, D), adapters (B, D, r),
        content applies (B,), has an adapter (B,))``."""
        f = self.features
        prefs = np.stack([s.preference for s in states]).astype(np.float32) if states else \
            np.zeros((0, f.dim), np.float32)
        adapters = np.zeros((len(states), f.dim, f.lora_rank), np.float32)
        has_lora = np.zeros(len(states), bool)
        for i, s in enumerate(states):
            if s.lora_b is not None and s.lora_b.shape == (f.dim, f.lora_rank):
                adapters[i] = s.lora_b
                has_lora[i] = True
        applies = np.any(prefs, axis=1).astype(bool, copy=False)  # one call, not per row
        return prefs, adapters, applies, has_lora


def rows_reference(feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
    """The numpy reference of the content graphs: ``[p·Xᵀ, clamp(pᵀ·B·(s·A·Xᵀ), -1, 1)]``
    with ``items_t`` and ``projected`` among the feeds."""
    pref = np.asarray(feeds["preference"], np.float32)
    content = pref @ np.asarray(feeds["items_t"], np.float32)
    u = np.einsum("bd,bdr->br", pref, np.asarray(feeds["lora_b"], np.float32))
    lora = np.clip(u @ np.asarray(feeds["projected"], np.float32), -1.0, 1.0)
    return [content.astype(np.float32), lora.astype(np.float32)]


__all__ = ["LABELS", "SOURCES", "ContentRows", "ContentScorer", "ContentSource", "Graph",
           "ModelSource", "content_buffers", "rows_reference"]
