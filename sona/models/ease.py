"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019, arXiv:1905.03375).

Closed form: ``P = (XᵀX + λI)⁻¹``, ``B = I − P·diag(1/diag(P))`` with ``diag(B) = 0``;
scores ``S = X·B``. One dense ``n_items²`` solve: fine up to ~20k items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.models.base import Recommender
from sona.models.export import ScorerExport, build_item_item_export
from sona.types import IndexArray


@dataclass(frozen=True, slots=True)
class EASEConfig:
    """EASE settings."""

    # L2 regularisation λ added to the Gram matrix diagonal (unitless; ~100-1000 on ML-100K)
    l2: float = 500.0
    # use binary interactions (True) or the weight column (False)
    binary: bool = True


class EASE(Recommender[EASEConfig]):
    """Item-item linear autoencoder with a zero diagonal, solved in closed form."""

    config_class = EASEConfig

    weights_: NDArray[np.float32]

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        if self.config.l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {self.config.l2}")
        x = (matrix > 0).astype(np.float64) if self.config.binary else matrix.astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.config.l2
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)

    def _inputs(self, user_idx: IndexArray) -> sp.csr_matrix:
        x = self.seen_[user_idx] if hasattr(self, "seen_") else None
        assert x is not None
        return (x > 0).astype(np.float32) if self.config.binary else x.astype(np.float32)

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float32]:
        return np.asarray(self._inputs(user_idx) @ self.weights_)

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float32]:
        return self.weights_[item_idx]

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = state["weights"]

    def export_scorer(self) -> ScorerExport:
        """An ``item_item`` graph ``X·B`` over the user's interaction row.

        Raises:
            NotFittedError: before ``fit``.
        """
        self._check_fitted()
        return build_item_item_export(self, self.weights_, binary=self.config.binary)
