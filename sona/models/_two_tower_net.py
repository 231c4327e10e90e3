"""Torch side of :mod:`sona.models.two_tower`: the module, its training loop and losses.

Kept apart so importing the model registry does not import torch (~2-4 s); see the
two-tower module docstring for the model, losses and regularisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray
from torch import nn

if TYPE_CHECKING:
    from sona.models.two_tower import TwoTowerConfig

log = logging.getLogger(__name__)


class TwoTowerNet(nn.Module):
    """The torch module: embeddings, tower projections and item bias.

    Args:
        n_users, n_items: table sizes.
        n_factors: embedding and output dimension.
        content: ``(n_items, c)`` item feature vectors aligned to item indices, or None.
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int,
                 content: torch.Tensor | None = None) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, n_factors)
        self.item_embedding = nn.Embedding(n_items, n_factors)
        self.item_bias = nn.Embedding(n_items, 1)
        self.user_proj = nn.Linear(n_factors, n_factors, bias=False)
        self.item_proj = nn.Linear(n_factors, n_factors, bias=False)
        self.content_proj: nn.Linear | None = None
        self.content: torch.Tensor | None
        if content is None:
            self.content = None
        else:
            self.register_buffer("content", content.float())
            self.content_proj = nn.Linear(content.shape[1], n_factors, bias=False)

    def reset(self, init_std: float) -> None:
        """Normal embeddings, identity projections, zero bias and zero content projection."""
        with torch.no_grad():
            nn.init.normal_(self.user_embedding.weight, std=init_std)
            nn.init.normal_(self.item_embedding.weight, std=init_std)
            nn.init.zeros_(self.item_bias.weight)
            nn.init.eye_(self.user_proj.weight)
            nn.init.eye_(self.item_proj.weight)
            if self.content_proj is not None:
                nn.init.zeros_(self.content_proj.weight)

    def encode_users(self, embeddings: torch.Tensor) -> torch.Tensor:
        """User tower on raw embedding rows: ``(n, d) -> (n, d)``."""
        return self.user_proj(embeddings)

    def user_vectors(self, user_idx: torch.Tensor) -> torch.Tensor:
        """``(n,) -> (n, d)``."""
        return self.encode_users(self.user_embedding(user_idx))

    def item_vectors(self, item_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Item tower for ``item_idx`` (all items when None): ``(m, d)``."""
        if item_idx is None:
            item_idx = torch.arange(self.item_embedding.num_embeddings)
        h = self.item_embedding(item_idx)
        if self.content_proj is not None and self.content is not None:
            h = h + self.content_proj(self.content[item_idx])
        return self.item_proj(h)

    def biases(self, item_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Item biases ``(m,)`` (all items when None)."""
        weight = self.item_bias.weight[:, 0]
        return weight if item_idx is None else weight[item_idx]



class _threads:
    """Context manager: run torch on ``n`` threads, then restore the previous count."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.previous = torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.previous)


def _batches(n_users: int, batch_size: int, rng: np.random.Generator) -> Iterator[NDArray[Any]]:
    if batch_size >= n_users:
        yield np.arange(n_users)
        return
    order = rng.permutation(n_users)
    for start in range(0, n_users, batch_size):
        yield np.sort(order[start:start + batch_size])


def _batch_loss(net: TwoTowerNet, weights: sp.csr_matrix, batch: NDArray[Any],
                cfg: TwoTowerConfig, n_users: int, gen: torch.Generator) -> torch.Tensor:
    """Mean loss per (weighted) positive of ``batch`` plus the L2 terms on tower outputs."""
    rows = weights[batch]
    local = torch.as_tensor(np.repeat(np.arange(len(batch)), np.diff(rows.indptr)))
    pos = torch.as_tensor(rows.indices.astype(np.int64))
    w = torch.as_tensor(rows.data)
    users = net.user_vectors(torch.as_tensor(batch))
    reg = cfg.user_reg * users.pow(2).sum() / len(batch)
    if cfg.loss == "softmax":
        items = net.item_vectors()
        scores = users @ items.T + net.biases()
        nll = torch.logsumexp(scores, dim=1)[local] - scores[local, pos]
        reg = reg + cfg.item_reg * items.pow(2).sum() / n_users
    else:
        n_items = net.item_embedding.num_embeddings
        pos_vec = net.item_vectors(pos)
        pos_score = (users[local] * pos_vec).sum(1) + net.biases(pos)
        if cfg.loss == "sampled_softmax":
            neg = torch.randint(0, n_items, (cfg.n_negatives,), generator=gen)
            neg_vec = net.item_vectors(neg)
            neg_score = users[local] @ neg_vec.T + net.biases(neg)
            logits = torch.cat([pos_score[:, None], neg_score], dim=1)
            nll = torch.logsumexp(logits, dim=1) - pos_score
        else:
            neg = torch.randint(0, n_items, (len(pos),), generator=gen)
            neg_vec = net.item_vectors(neg)
            neg_score = (users[local] * neg_vec).sum(1) + net.biases(neg)
            nll = -torch.nn.functional.logsigmoid(pos_score - neg_score)
        # sampled items stand in for the catalogue: scale their L2 to the full-softmax size
        seen = torch.cat([pos_vec, neg_vec])
        reg = reg + cfg.item_reg * seen.pow(2).sum() * n_items / len(seen) / n_users
    return (w * nll).sum() / w.sum() + reg


def train_network(matrix: sp.csr_matrix, cfg: TwoTowerConfig,
                  content: NDArray[np.float32] | None) -> tuple[TwoTowerNet, float]:
    """Fit a fresh :class:`TwoTowerNet` on the users x items weights; returns it (eval mode)
    and the mean loss of the last epoch."""
    n_users, n_items = matrix.shape
    with _threads(cfg.n_threads):
        torch.manual_seed(cfg.seed)
        net = TwoTowerNet(n_users, n_items, cfg.n_factors,
                          None if content is None else torch.as_tensor(content))
        net.reset(cfg.init_std)
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        weights = matrix.tocsr().astype(np.float32)
        weights.sort_indices()
        start = time.perf_counter()
        loss = float("nan")
        for epoch in range(cfg.n_epochs):
            total, n_batches = 0.0, 0
            for batch in _batches(n_users, cfg.batch_size, rng):
                opt.zero_grad()
                value = _batch_loss(net, weights, batch, cfg, n_users, gen)
                value.backward()
                opt.step()
                total += float(value.detach())
                n_batches += 1
            loss = total / max(n_batches, 1)
            if epoch % 50 == 0:
                log.debug("two-tower epoch %d loss %.5f", epoch, loss)
        log.info("two-tower fit: %d epochs in %.1f s, final loss %.5f", cfg.n_epochs,
                 time.perf_counter() - start, loss)
    return net.eval(), loss


def tower_outputs(net: TwoTowerNet) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                             NDArray[np.float32]]:
    """``(user vectors (n_users, d), item vectors (n_items, d), item biases (n_items,))``."""
    with torch.no_grad():
        users = net.user_vectors(torch.arange(net.user_embedding.num_embeddings))
        return (users.numpy().astype(np.float32), net.item_vectors().numpy().astype(np.float32),
                net.biases().numpy().astype(np.float32).copy())


def network_from_state(state: Mapping[str, NDArray[Any]]) -> TwoTowerNet:
    """Rebuild a :class:`TwoTowerNet` from its ``state_dict`` arrays (eval mode)."""
    weights = {k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}
    n_users, n_factors = weights["user_embedding.weight"].shape
    n_items = weights["item_embedding.weight"].shape[0]
    net = TwoTowerNet(n_users, n_items, n_factors, weights.get("content"))
    net.load_state_dict(weights)
    return net.eval()


__all__ = ["TwoTowerNet", "network_from_state", "tower_outputs", "train_network"]
