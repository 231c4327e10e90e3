"""Bayesian Personalized Ranking (Rendle et al., UAI 2009, arXiv:1205.2618).

Wraps :class:`implicit.cpu.bpr.BayesianPersonalizedRanking` (the CPU class, not implicit's
GPU-picking factory). implicit learns ``factors + 1`` columns: the last item column is an
item bias and the last user column is fixed at 1, so ``score = u . v + b_i``. We store the
latent parts and the bias apart (``user_factors_``, ``item_factors_``, ``item_bias_``):
scores add the bias, and item-item cosine uses the latent factors only, so the popularity
carried by the bias does not leak into "similar items". For inner-product search, the
augmented vectors ``[u, 1]`` and ``[v, b]`` reproduce the score exactly.

Determinism: implicit runs lock-free (Hogwild) SGD over ``n_threads`` threads, so with more
than one thread the update order, and thus the result, varies between runs. The default of
one thread makes a refit with the same seed bit-identical.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.models.base import Recommender
from sona.types import IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BPRConfig:
    """BPR settings (defaults tuned on ML-100K, stratified 75/25, nDCG@10)."""

    # latent dimension of user and item factors (an item bias is learned on top)
    n_factors: int = 64
    # SGD step size
    learning_rate: float = 0.01
    # L2 penalty on factors and biases, applied per SGD step (unitless)
    regularization: float = 0.01
    # epochs; each draws as many (user, positive, negative) triples as there are interactions
    n_iter: int = 100
    # redraw a sampled negative the user actually interacted with (slower, usually better)
    verify_negative_samples: bool = True
    # seed of the initialisation and of the samplers
    seed: int = 42
    # SGD threads; > 1 is faster but Hogwild updates make refits differ slightly
    n_threads: int = 1
    # show implicit's tqdm progress bar during fit
    show_progress: bool = False


class BPR(Recommender[BPRConfig]):
    """Matrix factorisation trained on sampled pairwise rankings (observed > unobserved)."""

    config_class = BPRConfig

    user_factors_: NDArray[np.float32]
    item_factors_: NDArray[np.float32]
    item_bias_: NDArray[np.float32]

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        cfg = self.config
        for name, value in (("n_factors", cfg.n_factors), ("n_iter", cfg.n_iter),
                            ("n_threads", cfg.n_threads)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if cfg.learning_rate <= 0 or cfg.regularization < 0:
            raise ValueError(f"need learning_rate > 0 and regularization >= 0, got "
                             f"{cfg.learning_rate} and {cfg.regularization}")
        model = BayesianPersonalizedRanking(
            factors=cfg.n_factors, learning_rate=cfg.learning_rate,
            regularization=cfg.regularization, dtype=np.float32, iterations=cfg.n_iter,
            num_threads=cfg.n_threads, verify_negative_samples=cfg.verify_negative_samples,
            random_state=cfg.seed,
        )
        # BPR reads only which pairs are present; weights are ignored
        binary = (matrix > 0).astype(np.float32)
        binary.sort_indices()
        model.fit(binary, show_progress=cfg.show_progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors[:, :-1])
        self.item_factors_ = np.ascontiguousarray(model.item_factors[:, :-1])
        self.item_bias_ = np.ascontiguousarray(model.item_factors[:, -1])

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float32]:
        scores = self.user_factors_[user_idx] @ self.item_factors_.T
        scores += self.item_bias_
        return scores

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.float32]:
        dots = np.einsum("ij,ij->i", self.user_factors_[user_idx], self.item_factors_[item_idx])
        return dots + self.item_bias_[item_idx]

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float32]:
        norms = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        unit = np.divide(self.item_factors_, norms, out=np.zeros_like(self.item_factors_),
                         where=norms > 0)
        return unit[item_idx] @ unit.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                "item_bias": self.item_bias_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]
        self.item_bias_ = state["item_bias"]
