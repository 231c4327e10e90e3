"""Bayesian Personalized Ranking (Rendle et al., UAI 2009, arXiv:1205.2618).

Wraps :class:`implicit.cpu.bpr.BayesianPersonalizedRanking` (the CPU class, not implicit's
GPU-picking factory). implicit learns ``factors + 1`` columns: the last item column is an
item bias and the last user column is fixed at 1, so ``score = u . v + b_i``. We store the
latent parts and the bias apart (``user_factors_``, ``item_factors_``, ``item_bias_``):
scores add the bias, and item-item cosine uses the latent factors only, so the popularity
carried by the bias does not leak into "similar items". For inner-product search, the
augmented vectors ``[u, 1]`` and ``[v, b]`` reproduce the score exactly.

Negative sampling: implicit draws a negative as the item of a random training interaction,
i.e. in proportion to popularity, where the BPR paper draws items uniformly. On MovieLens this
pushes popular items down (ML-100K nDCG@10 0.29-0.38 against 0.42 with near-uniform
negatives). ``uniform_negatives`` restores uniform draws without touching implicit: we append
pseudo-users who interacted with every item. An item drawn from their rows is uniform over
the catalogue, and a triple whose positive falls in their rows is always skipped by
implicit's negative check (they "liked" everything), so they add draws but never updates.
A share ``s`` of uniform negatives costs ``1 / (1 - s)`` times the sampling work per epoch.

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
from sona.models.export import ScorerExport, build_factor_export, probe_scores
from sona.types import IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BPRConfig:
    """BPR settings; defaults tuned on ML-100K (stratified 75/25 per user, nDCG@10 0.420)."""

    # latent dimension of user and item factors (an item bias is learned on top)
    n_factors: int = 128
    # SGD step size
    learning_rate: float = 0.03
    # L2 penalty on factors and biases, applied per SGD step (unitless)
    regularization: float = 0.001
    # epochs; each draws as many (user, positive, negative) triples as there are interactions
    n_iter: int = 40
    # redraw a sampled negative the user actually interacted with (slower, usually better)
    verify_negative_samples: bool = True
    # share of negatives drawn uniformly over items, in [0, 1); the rest are drawn in
    # proportion to popularity (implicit's sampler). Needs verify_negative_samples.
    uniform_negatives: float = 0.9
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
        if not 0.0 <= cfg.uniform_negatives < 1.0:
            raise ValueError(f"uniform_negatives must be in [0, 1), got {cfg.uniform_negatives}")
        if cfg.uniform_negatives > 0 and not cfg.verify_negative_samples:
            raise ValueError("uniform_negatives > 0 needs verify_negative_samples=True "
                             "(the padding users' triples are skipped by that check)")
        model = BayesianPersonalizedRanking(
            factors=cfg.n_factors, learning_rate=cfg.learning_rate,
            regularization=cfg.regularization, dtype=np.float32, iterations=cfg.n_iter,
            num_threads=cfg.n_threads, verify_negative_samples=cfg.verify_negative_samples,
            random_state=cfg.seed,
        )
        n_users = matrix.shape[0]
        model.fit(training_matrix(matrix, cfg.uniform_negatives), show_progress=cfg.show_progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors[:n_users, :-1])
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

    def export_scorer(self) -> ScorerExport:
        """A ``factors`` graph ``U·Vᵀ + b`` with the learned item bias.

        New users are folded in by serving's ALS-style ridge solve (``alpha`` 1, this
        model's ``regularization`` as the ridge).

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()

        def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            return probe_scores(self, len(rows), user_factors_=rows)

        return build_factor_export(reference, self.user_factors_, self.item_factors_,
                                   self.item_bias_, alpha=1.0,
                                   regularization=self.config.regularization)


def training_matrix(matrix: sp.csr_matrix, uniform_negatives: float) -> sp.csr_matrix:
    """The binary float32 CSR handed to implicit, padded with all-items pseudo-user rows.

    ``ceil(s / (1 - s) * nnz / n_items)`` rows for a uniform share ``s``, so that share of
    the entries (the pool implicit draws negatives from) is spread evenly over the items.
    BPR reads only which pairs are present; weights are ignored.
    """
    binary = (matrix > 0).astype(np.float32)
    binary.eliminate_zeros()
    binary.sort_indices()
    if uniform_negatives <= 0:
        return binary
    n_users, n_items = binary.shape
    n_pad = int(np.ceil(uniform_negatives / (1.0 - uniform_negatives) * binary.nnz / n_items))
    indices = np.concatenate([binary.indices, np.tile(np.arange(n_items), n_pad)])
    indptr = np.concatenate([binary.indptr, binary.nnz + n_items * np.arange(1, n_pad + 1)])
    # implicit's kernels need one integer type for indices and indptr
    idx_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices.astype(idx_dtype),
                          indptr.astype(idx_dtype)), shape=(n_users + n_pad, n_items))
