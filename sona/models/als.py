"""Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008; CG solver: Takács et al., 2011).

Wraps :class:`implicit.cpu.als.AlternatingLeastSquares`, the CPU class itself rather than
implicit's factory, so a CUDA machine fits the same model as a CPU one. Confidence follows
SPEC §2.3: ``c = 1 + alpha * r`` for observed pairs (``r`` the interaction weight), 1
otherwise; preference ``p = 1`` where observed. implicit reads the matrix value as the
confidence itself, so we hand it ``1 + alpha * r`` and set its own ``alpha`` to 1.

Threads: the per-row solves are independent, so the result does not depend on
``n_threads``. BLAS threads inside implicit's solver fight its own thread pool (10x slower);
``fit`` limits BLAS to one thread with ``threadpoolctl`` (``OPENBLAS_NUM_THREADS=1`` set in
the environment does the same for the whole process, which is what implicit recommends).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from sona.data.interactions import Interactions
from sona.models.base import Recommender
from sona.models.export import ScorerExport, build_factor_export, probe_scores
from sona.types import IndexArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ALSConfig:
    """ALS settings; defaults tuned on ML-100K (stratified 75/25 per user, nDCG@10 0.490).

    SPEC §2.3's original values (regularization 0.1, alpha 40) score nDCG@10 0.298 there:
    with binary data they overweight observed pairs; a large ridge over a small alpha wins.
    """

    # latent dimension of user and item factors
    n_factors: int = 64
    # L2 penalty lambda added to each row's normal equations, not scaled by activity (SPEC: 0.1)
    regularization: float = 40.0
    # ALS sweeps (each solves all users, then all items)
    n_iter: int = 15
    # confidence slope: observed pairs get confidence 1 + alpha * weight (SPEC: 40)
    alpha: float = 4.0
    # use binary interactions (True) or the weight column (False) as r
    binary: bool = True
    # seed of the factor initialisation (refits with one seed are identical)
    seed: int = 42
    # conjugate-gradient solver (True, faster) or exact Cholesky per row (False)
    use_cg: bool = True
    # implicit's compiled solver (True) or its pure-python reference one (False, slow)
    use_native: bool = True
    # solver threads, 0 = all cores; results do not depend on it
    n_threads: int = 0
    # show implicit's tqdm progress bar during fit
    show_progress: bool = False


class ALS(Recommender[ALSConfig]):
    """Weighted matrix factorisation for implicit feedback, solved by alternating least squares."""

    config_class = ALSConfig

    user_factors_: NDArray[np.float32]
    item_factors_: NDArray[np.float32]

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        _check_positive(n_factors=cfg.n_factors, n_iter=cfg.n_iter)
        if cfg.regularization < 0 or cfg.alpha < 0:
            raise ValueError(f"regularization and alpha must be >= 0, got "
                             f"{cfg.regularization} and {cfg.alpha}")
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=cfg.n_factors, regularization=cfg.regularization, alpha=1.0,
                dtype=np.float32, use_native=cfg.use_native, use_cg=cfg.use_cg,
                iterations=cfg.n_iter, num_threads=cfg.n_threads, random_state=cfg.seed,
            )
            model.fit(confidence(matrix, cfg.alpha, binary=cfg.binary),
                      show_progress=cfg.show_progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors)
        self.item_factors_ = np.ascontiguousarray(model.item_factors)

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float32]:
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def _score_pairs(self, user_idx: IndexArray, item_idx: IndexArray) -> NDArray[np.float32]:
        return np.einsum("ij,ij->i", self.user_factors_[user_idx], self.item_factors_[item_idx])

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float32]:
        unit = self._unit_factors()
        return unit[item_idx] @ unit.T

    def _unit_factors(self) -> NDArray[np.float32]:
        """``_unit_rows(item_factors_)``, kept while ``item_factors_`` is the same array (it
        is only ever replaced, by fit and restore): normalising every item again was ~15%
        of a served ``/recommendations/similar`` request (issue 12). Same bits either way."""
        factors = self.item_factors_
        cached = getattr(self, "_unit_cache", None)
        if cached is not None and cached[0] is factors:
            return cast(NDArray[np.float32], cached[1])
        unit = _unit_rows(factors)
        self._unit_cache = (factors, unit)
        return unit

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]

    def export_scorer(self) -> ScorerExport:
        """A ``factors`` graph ``U·Vᵀ``; serving folds new users in with this model's ALS step.

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()

        def reference(rows: NDArray[np.float32]) -> NDArray[np.floating]:
            return probe_scores(self, len(rows), user_factors_=rows)

        return build_factor_export(reference, self.user_factors_, self.item_factors_,
                                   alpha=self.config.alpha,
                                   regularization=self.config.regularization)


def confidence(matrix: sp.csr_matrix, alpha: float, *, binary: bool = True) -> sp.csr_matrix:
    """The float32 CSR of confidences ``1 + alpha * r`` on the observed pairs.

    This is the matrix to hand implicit (with its own ``alpha=1``) to fit the same model.
    """
    r = (matrix > 0).astype(np.float32) if binary else matrix.astype(np.float32)
    c = sp.csr_matrix(r, copy=True)
    c.eliminate_zeros()  # a zero weight is no interaction, not confidence 1
    c.data = (1.0 + alpha * c.data).astype(np.float32)
    c.sort_indices()
    return c


def _unit_rows(factors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
