"""LightGCN: simplified graph convolution for recommendation (He et al., SIGIR 2020).

Users and items are nodes of the bipartite interaction graph with adjacency
``A = [[0, R], [Rᵀ, 0]]`` and symmetric normalisation ``Â = D^-1/2 A D^-1/2``. Layer
``k + 1`` is ``E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾`` (no feature transform, no non-linearity) and the final
embedding is the layer mean ``(E⁽⁰⁾ + ... + E⁽ᴷ⁾) / (K + 1)``; a score is the inner product
of a user's and an item's final embeddings. Training minimises the BPR loss over
(user, positive, sampled negative) triples with L2 on the batch's layer-0 embeddings,
re-propagating the whole graph every step as the paper does.

Each epoch draws as many triples as there are interactions: a user uniformly among users
with interactions, one of their items, and an item they have not interacted with (the
paper's ``UniformSample``). Sampling uses a seeded numpy generator and the weights a seeded
torch generator, and training runs on ``n_threads`` CPU threads (1 by default), so two fits
with the same config give identical factors. The propagated factors are what is saved.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.export import ScorerExport, build_factor_export, probe_scores
from sona.types import IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LightGCNConfig:
    """LightGCN settings (defaults tuned on ML-100K, stratified 75/25 split)."""

    # embedding dimension of users and items
    n_factors: int = 64
    # propagation layers K (final embedding = mean of layers 0..K)
    n_layers: int = 3
    # passes over the training interactions (one sampled triple per interaction)
    epochs: int = 30
    # (user, positive, negative) triples per gradient step
    batch_size: int = 2048
    # Adam learning rate
    lr: float = 0.015
    # L2 weight on the batch's layer-0 embeddings (the paper's λ)
    l2: float = 1e-3
    # standard deviation of the normal initialisation of the embeddings
    init_std: float = 0.1
    # seed of the weight initialisation and the triple sampling
    seed: int = 42
    # CPU threads torch may use while fitting (1 = bit-for-bit reproducible)
    n_threads: int = 1
    # torch device: "cpu" | "cuda"
    device: str = "cpu"


def normalized_adjacency(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph of a users x items matrix.

    Nodes are users ``0..U-1`` then items ``U..U+I-1``; every positive entry of ``matrix``
    is an edge of weight 1. Isolated nodes keep an all-zero row.

    Returns:
        ``(U + I, U + I)`` symmetric CSR, float64.
    """
    binary = (matrix > 0).astype(np.float64)
    adjacency = sp.bmat([[None, binary], [binary.T, None]], format="csr")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    scale = sp.diags(inv_sqrt)
    return sp.csr_matrix(scale @ adjacency @ scale)


def to_torch_csr(matrix: sp.csr_matrix, device: str = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a float32 torch sparse CSR tensor on ``device``."""
    csr = matrix.tocsr()
    csr.sort_indices()
    with warnings.catch_warnings():
        # torch flags CSR tensors as beta on every construction; the ops used here are stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data.astype(np.float32)), size=csr.shape, device=device,
            check_invariants=True)


class _SymmetricSpmm(torch.autograd.Function):
    """``Â @ X`` for a symmetric sparse ``Â``: the gradient is ``Â @ G`` (no transpose).

    torch's generic sparse backward transposes and re-sorts the matrix on every call, which
    made a LightGCN step ~4x slower on CPU.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, adjacency: torch.Tensor,
                dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency  # type: ignore[attr-defined]
        return adjacency @ dense

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adjacency @ grad  # type: ignore[attr-defined]


def propagate(adjacency: torch.Tensor, embeddings: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of ``E, ÂE, ..., Â^K E``: LightGCN's final embeddings, shape of ``embeddings``.

    ``adjacency`` must be symmetric (e.g. :func:`normalized_adjacency` via
    :func:`to_torch_csr`); gradients flow to ``embeddings``.
    """
    layer, total = embeddings, embeddings
    for _ in range(n_layers):
        layer = _SymmetricSpmm.apply(adjacency, layer)
        total = total + layer
    return total / (n_layers + 1)


def _sample_triples(matrix: sp.csr_matrix, n: int,
                    rng: np.random.Generator) -> tuple[NDArray[np.int64], ...]:
    """``n`` (user, positive, negative) index triples, negatives outside the user's items."""
    n_items = matrix.shape[1]
    counts = np.diff(matrix.indptr)
    active = np.flatnonzero(counts)
    users = active[rng.integers(0, len(active), n)]
    pos = matrix.indices[matrix.indptr[users] + rng.integers(0, counts[users])].astype(np.int64)
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts) * n_items + matrix.indices
    neg = rng.integers(0, n_items, n)
    redo = np.isin(users * n_items + neg, keys)
    while redo.any():
        neg[redo] = rng.integers(0, n_items, int(redo.sum()))
        redo[redo] = np.isin(users[redo] * n_items + neg[redo], keys)
    return users.astype(np.int64), pos, neg.astype(np.int64)


class LightGCN(Recommender[LightGCNConfig]):
    """Light graph convolution over the user-item graph, trained with BPR."""

    config_class = LightGCNConfig

    user_factors_: NDArray[np.float32]
    item_factors_: NDArray[np.float32]

    def _validate(self, matrix: sp.csr_matrix) -> None:
        c = self.config
        if min(c.n_factors, c.epochs, c.batch_size, c.n_threads) < 1 or c.n_layers < 0:
            raise ConfigError("n_factors, epochs, batch_size and n_threads must be >= 1 and "
                              f"n_layers >= 0; got {c}")
        if c.lr <= 0 or c.l2 < 0 or c.init_std <= 0:
            raise ConfigError(f"need lr > 0, l2 >= 0 and init_std > 0; got {c}")
        if (matrix > 0).sum(axis=1).min() >= matrix.shape[1]:
            raise ConfigError("every user interacted with every item: no negatives to sample")

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        self._validate(matrix)
        c = self.config
        positives = sp.csr_matrix((matrix > 0).astype(np.float32))
        positives.sort_indices()
        n_users, n_items = positives.shape
        device = torch.device(c.device)
        adjacency = to_torch_csr(normalized_adjacency(positives), c.device)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(c.n_threads)
        try:
            generator = torch.Generator().manual_seed(c.seed)
            weights = torch.empty(n_users + n_items, c.n_factors).normal_(
                0.0, c.init_std, generator=generator).to(device).requires_grad_(True)
            optimizer = torch.optim.Adam([weights], lr=c.lr)
            rng = np.random.default_rng(c.seed)
            start = time.perf_counter()
            for epoch in range(c.epochs):
                users, pos, neg = _sample_triples(positives, positives.nnz, rng)
                total = 0.0
                for lo in range(0, len(users), c.batch_size):
                    u = torch.from_numpy(users[lo:lo + c.batch_size]).to(device)
                    i = torch.from_numpy(pos[lo:lo + c.batch_size] + n_users).to(device)
                    j = torch.from_numpy(neg[lo:lo + c.batch_size] + n_users).to(device)
                    final = propagate(adjacency, weights, c.n_layers)
                    eu, ei, ej = final[u], final[i], final[j]
                    bpr = -torch.nn.functional.logsigmoid(
                        (eu * ei).sum(dim=1) - (eu * ej).sum(dim=1)).mean()
                    reg = 0.5 * (weights[u].pow(2).sum() + weights[i].pow(2).sum()
                                 + weights[j].pow(2).sum()) / len(u)
                    loss = bpr + c.l2 * reg
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(u)
                log.debug("epoch %d: loss %.4f (%.1f s)", epoch + 1, total / len(users),
                          time.perf_counter() - start)
            with torch.no_grad():
                factors = propagate(adjacency, weights, c.n_layers).cpu().numpy()
        finally:
            torch.set_num_threads(previous_threads)
        log.info("LightGCN: %d epochs in %.1f s", c.epochs, time.perf_counter() - start)
        self.user_factors_ = factors[:n_users].astype(np.float32)
        self.item_factors_ = factors[n_users:].astype(np.float32)

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float32]:
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.float32]:
        return np.einsum("ij,ij->i", self.user_factors_[user_idx], self.item_factors_[item_idx])

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float32]:
        norms = np.linalg.norm(self.item_factors_, axis=1)
        unit = self.item_factors_ / np.maximum(norms, 1e-12)[:, None]
        return unit[item_idx] @ unit.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"].astype(np.float32)
        self.item_factors_ = state["item_factors"].astype(np.float32)

    def export_scorer(self) -> ScorerExport:
        """A ``factors`` graph over the propagated (layer-mean) embeddings, ``U·Vᵀ``.

        The saved factors already include the graph propagation, so serving needs no
        adjacency; new users are folded in ALS-style (``alpha`` 1, ridge 0.1).

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()

        def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            return probe_scores(self, len(rows), user_factors_=rows)

        return build_factor_export(reference, self.user_factors_, self.item_factors_)
