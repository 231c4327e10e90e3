"""Two-tower scorer in torch: the shared tier-1 model of SONA's LoRA personalisation (SPEC §2.2).

Towers (Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016;
Yi et al., "Sampling-Bias-Corrected Neural Modeling", RecSys 2019):

- user tower ``u = user_proj(user_embedding[u])``;
- item tower ``v = item_proj(item_embedding[i] + content_proj(content[i]))`` (the content
  term only when item feature vectors, e.g. :mod:`sona.embeddings` output, are given);
- score ``s(u, i) = u·v + b_i`` with a learned item bias.

``user_proj`` and ``item_proj`` are square ``nn.Linear`` layers initialised to the identity,
so the model starts as plain matrix factorisation; they exist so that tier-2 LoRA adapters
(:mod:`sona.personalization`) have a small, user-side linear layer to adapt: a rank-``r``
adapter on ``user_proj`` holds ``2·r·n_factors`` numbers, whatever the number of users.

Losses: ``"softmax"`` is the full multinomial likelihood over the catalogue per user
(Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018; exact, and
cheap while ``n_items`` is in the thousands); ``"sampled_softmax"`` replaces the catalogue
by ``n_negatives`` uniformly drawn items shared by the batch (uniform sampling needs no
logQ correction; accidental hits are kept); ``"bpr"`` is Rendle et al.'s pairwise loss with
one uniform negative per positive. L2 acts on the tower *outputs* ``u`` and ``v``, so the
identity-initialised projections cannot dodge it by rescaling.

Determinism: the seed drives initialisation, batch order and negative samples, and fit runs
on ``n_threads`` torch threads (restored afterwards); one thread makes refits bit-identical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray
from torch import nn

from sona.data.interactions import Interactions
from sona.errors import DataError
from sona.models.base import Recommender
from sona.types import IdArray, IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TwoTowerConfig:
    """Two-tower settings (defaults tuned on ML-100K, stratified 75/25, nDCG@10)."""

    # dimension of the embeddings and of both tower outputs
    n_factors: int = 64
    # "softmax" (full catalogue), "sampled_softmax" or "bpr"
    loss: Literal["softmax", "sampled_softmax", "bpr"] = "softmax"
    # passes over all users
    n_epochs: int = 400
    # users per optimiser step (>= n_users: one full-batch step per epoch)
    batch_size: int = 1024
    # Adam step size
    learning_rate: float = 0.01
    # L2 weight on user vectors u (per user in the batch)
    user_reg: float = 0.05
    # L2 weight on item vectors v (summed over items, divided by n_users)
    item_reg: float = 0.15
    # negatives shared by a batch for "sampled_softmax"
    n_negatives: int = 256
    # std of the normal initialisation of the embeddings
    init_std: float = 0.01
    # seed of initialisation, batch order and negative sampling
    seed: int = 42
    # torch threads during fit and scoring (1: bit-identical refits)
    n_threads: int = 1


class ItemFeatures(NamedTuple):
    """Content vectors of items (e.g. :class:`sona.embeddings.TextEncoder` output)."""

    ids: IdArray  # (n,) external item ids
    vectors: NDArray[np.float32]  # (n, dim) one row per id


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
        if content is not None:
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
        if self.content_proj is not None:
            h = h + self.content_proj(self.content[item_idx])
        return self.item_proj(h)

    def biases(self, item_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Item biases ``(m,)`` (all items when None)."""
        weight = self.item_bias.weight[:, 0]
        return weight if item_idx is None else weight[item_idx]


class TwoTower(Recommender[TwoTowerConfig]):
    """User and item towers scored by an inner product plus item bias.

    Args:
        config: hyper-parameters.
        item_features: optional item content vectors; items of the training data missing
            from them get a zero content vector. Saved with the model.
    """

    config_class = TwoTowerConfig

    network_: TwoTowerNet
    user_vectors_: NDArray[np.float32]
    item_vectors_: NDArray[np.float32]
    item_bias_: NDArray[np.float32]

    def __init__(self, config: TwoTowerConfig | None = None, *,
                 item_features: ItemFeatures | None = None) -> None:
        super().__init__(config)
        self.item_features = item_features

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        cfg = self.config
        _validate(cfg)
        n_users, n_items = matrix.shape
        content = None if self.item_features is None else torch.as_tensor(
            _align_features(self.item_features, data))
        with _threads(cfg.n_threads):
            torch.manual_seed(cfg.seed)
            net = TwoTowerNet(n_users, n_items, cfg.n_factors, content)
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
        self.network_ = net.eval()
        self.train_loss_ = loss
        self._cache_vectors()

    def _cache_vectors(self) -> None:
        with torch.no_grad():
            net = self.network_
            self.user_vectors_ = net.user_vectors(
                torch.arange(net.user_embedding.num_embeddings)).numpy().astype(np.float32)
            self.item_vectors_ = net.item_vectors().numpy().astype(np.float32)
            self.item_bias_ = net.biases().numpy().astype(np.float32).copy()

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float32]:
        return self.user_vectors_[user_idx] @ self.item_vectors_.T + self.item_bias_

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.float32]:
        dots = np.einsum("ij,ij->i", self.user_vectors_[user_idx], self.item_vectors_[item_idx])
        return dots + self.item_bias_[item_idx]

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float32]:
        norms = np.linalg.norm(self.item_vectors_, axis=1, keepdims=True)
        unit = np.divide(self.item_vectors_, norms, out=np.zeros_like(self.item_vectors_),
                         where=norms > 0)
        return unit[item_idx] @ unit.T

    def _state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().numpy() for k, v in self.network_.state_dict().items()}
        state["train_loss"] = np.asarray(self.train_loss_, np.float64)
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        weights = {k[len("net."):]: torch.as_tensor(v) for k, v in state.items()
                   if k.startswith("net.")}
        n_users, n_factors = weights["user_embedding.weight"].shape
        n_items = weights["item_embedding.weight"].shape[0]
        net = TwoTowerNet(n_users, n_items, n_factors, weights.get("content"))
        net.load_state_dict(weights)
        self.network_ = net.eval()
        self.train_loss_ = float(state["train_loss"])
        self._cache_vectors()


# --- training helpers ------------------------------------------------------------------

def _validate(cfg: TwoTowerConfig) -> None:
    for name in ("n_factors", "n_epochs", "batch_size", "n_negatives", "n_threads"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.learning_rate <= 0 or cfg.user_reg < 0 or cfg.item_reg < 0 or cfg.init_std <= 0:
        raise ValueError("need learning_rate > 0, init_std > 0, user_reg >= 0 and item_reg >= 0")
    if cfg.loss not in ("softmax", "sampled_softmax", "bpr"):
        raise ValueError(f"loss must be 'softmax', 'sampled_softmax' or 'bpr', got {cfg.loss!r}")


def _align_features(features: ItemFeatures, data: Interactions) -> NDArray[np.float32]:
    vectors = np.asarray(features.vectors, np.float32)
    if vectors.ndim != 2 or len(vectors) != len(features.ids):
        raise DataError(f"item_features: {len(features.ids)} ids but vectors of shape "
                        f"{vectors.shape}")
    rows = data.items.numbers(np.asarray(features.ids), missing="negative")
    aligned = np.zeros((data.n_items, vectors.shape[1]), np.float32)
    known = rows >= 0
    aligned[rows[known]] = vectors[known]
    missing = data.n_items - len(np.unique(rows[known]))
    if missing:
        log.warning("two-tower: %d of %d items have no content vector (zeros used)",
                    missing, data.n_items)
    return aligned


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


__all__ = ["ItemFeatures", "TwoTower", "TwoTowerConfig", "TwoTowerNet"]
