"""Two-tower scorer in torch: the shared tier-1 model of SONA's LoRA personalisation (SPEC §2.2).

Towers (Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016;
Yi et al., "Sampling-Bias-Corrected Neural Modeling", RecSys 2019):

- user tower ``u = user_proj(user_embedding[u])``;
- item tower ``v = item_proj(item_embedding[i] + content_proj(content[i]))`` (the content
  term only when item feature vectors, e.g. :mod:`sona.embeddings` output, are given);
- score ``s(u, i) = u·v + b_i`` with a learned item bias.

``user_proj`` and ``item_proj`` are square ``nn.Linear`` layers initialised to the identity,
so the model starts as plain matrix factorisation; they exist so that tier-2 LoRA adapters
(:mod:`sona.lora.two_tier`) have a small, user-side linear layer to adapt: a rank-``r``
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
The torch module and training loop live in :mod:`sona.models._two_tower_net`, imported on
first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.errors import DataError
from sona.models.base import Recommender
from sona.models.export import ScorerExport, build_tower_export, probe_scores
from sona.types import IdArray, IndexArray

if TYPE_CHECKING:  # torch loads on first fit/load: `sona run` without a torch model stays fast
    from sona.models._two_tower_net import TwoTowerNet

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
        from sona.models._two_tower_net import train_network

        _validate(self.config)
        content = None if self.item_features is None else _align_features(
            self.item_features, data)
        self.network_, self.train_loss_ = train_network(matrix, self.config, content)
        self._cache_vectors()

    def _cache_vectors(self) -> None:
        from sona.models._two_tower_net import tower_outputs

        self.user_vectors_, self.item_vectors_, self.item_bias_ = tower_outputs(self.network_)

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
        from sona.models._two_tower_net import network_from_state

        self.network_ = network_from_state(
            {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
        self.train_loss_ = float(state["train_loss"])
        self._cache_vectors()

    def export_scorer(self) -> ScorerExport:
        """A ``towers`` graph: user embedding through ``user_proj``, then ``·Vᵀ + b``.

        The input is the user embedding *before* the projection, so tier-2 LoRA adapters on
        ``user_proj`` act on the served graph's user side.

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()
        proj = self.network_.user_proj.weight.detach().numpy().astype(np.float32)
        embeddings = self.network_.user_embedding.weight.detach().numpy()

        def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            return probe_scores(self, len(rows), user_vectors_=rows @ proj.T)

        return build_tower_export(reference, embeddings, proj, self.item_vectors_,
                                  self.item_bias_)


# --- validation -------------------------------------------------------------------------

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


__all__ = ["ItemFeatures", "TwoTower", "TwoTowerConfig"]
