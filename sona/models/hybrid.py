"""Hybrid recommender: pooled candidates from several models, blended with fitted weights.

SPEC §2.7's pipeline with every part made real: candidates from several generators (top
``n_candidates`` each, merged by item), per-user score normalisation, a weighted blend and
optional MMR diversity. The original fixed the blend in code (collaborative 0.35, graph 0.30,
content 0.25, context 0.10); here the weights are *fitted* on a validation split carved
from the training data (:func:`sona.models.generators.carve_validation`):

1. split the training interactions per user into fit / validation parts;
2. fit every generator on the fit part, score the validation users, and choose the
   non-negative weights (summing to 1) that maximise validation nDCG@``fit_k``
   (:func:`sona.ranking.blend.fit_blend_weights`);
3. refit the generators with a non-zero weight on all training data (the others are
   dropped: they would cost time and contribute nothing).

Scores: a pooled item scores ``1 + t(blend)``, any other item ``t(blend)``, with
``t(x) = 1/2 + arctan(x)/π`` mapping the blend into (0, 1). So pooled candidates always
rank first, every item still has a finite score (``exclude_seen=False`` can rank the whole
catalogue) and ``score`` agrees with ``recommend``. With ``mmr_lambda`` set, ``recommend``
re-ranks the top ``mmr_pool`` by MMR (:func:`sona.ranking.rerank.mmr`) and returns each
pick's MMR gain, which never increases along a list; ``score`` stays the blend.

Save/load: the generators' learned arrays are stored in the hybrid's own ``arrays.npz``
under ``g<i>__`` prefixes with the weights; :meth:`Recommender.load` rebuilds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.export import NotExportableError, ScorerExport
from sona.models.generators import (
    GeneratorSet,
    GeneratorSpec,
    carve_validation,
    check_specs,
    default_generators,
)
from sona.ranking.blend import (
    Normalization,
    blend_scores,
    fit_blend_weights,
    ndcg_from_scores,
    normalize_scores,
    pool_candidates,
)
from sona.ranking.rerank import mmr
from sona.types import IdArray, IndexArray, Recommendations

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HybridConfig:
    """Hybrid settings (defaults: ALS + EASE + ItemKNN, z-scored, weights fitted)."""

    # candidate generators, each a registered model with its parameters
    generators: list[GeneratorSpec] = field(default_factory=default_generators)
    # items pooled from each generator's top list (SPEC §2.7: 100); 0 pools every item
    n_candidates: int = 100
    # per-user score normalisation before blending: zscore | minmax | rank | none
    normalization: Normalization = "zscore"
    # fixed blend weights (one per generator, normalised to sum 1); None = fit on validation
    weights: list[float] | None = None
    # share of each user's training interactions the generators are fitted on while the
    # weights are chosen (the rest is the validation split), in (0, 1)
    validation_ratio: float = 0.75
    # seed of the validation split
    validation_seed: int = 7
    # cut-off of the validation nDCG the weights maximise
    fit_k: int = 10
    # resolution of the fitted weights
    weight_step: float = 0.05
    # MMR trade-off λ in [0, 1] applied by recommend (SPEC §2.7: 0.7); None = no MMR
    mmr_lambda: float | None = None
    # items re-ranked by MMR per user (the blend's top list)
    mmr_pool: int = 100
    # item vectors of the MMR similarity: "interactions" (item columns of the training
    # matrix, co-occurrence cosine) or "genres" (catalog genre one-hot; needs side data)
    mmr_vectors: Literal["interactions", "genres"] = "interactions"
    # dataset whose catalog gives genre vectors when mmr_vectors is "genres"
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source
    data_dir: str = "datasets"


def _tier(blend: NDArray[np.float64]) -> NDArray[np.float64]:
    """Order-preserving map of the reals into (0, 1) (arctan keeps resolution at large |x|)."""
    return 0.5 + np.arctan(blend) / np.pi


class Hybrid(Recommender[HybridConfig]):
    """Weighted blend of several generators' normalised scores over a pooled candidate set."""

    config_class = HybridConfig

    weights_: NDArray[np.float64]
    generators_: GeneratorSet
    #: indices into config.generators of the generators kept (non-zero weight)
    active_: NDArray[np.int64]
    #: validation nDCG@fit_k of the blend, then of each generator alone (NaN: fixed weights)
    validation_ndcg_: NDArray[np.float64]
    mmr_vectors_: NDArray[np.float32]

    # --- fitting -------------------------------------------------------------------------

    def _validate(self) -> None:
        c = self.config
        check_specs(c.generators, owner="hybrid")
        if c.weights is not None:
            if len(c.weights) != len(c.generators):
                raise ConfigError(f"hybrid.weights has {len(c.weights)} values for "
                                  f"{len(c.generators)} generators")
            if any(w < 0 for w in c.weights) or sum(c.weights) <= 0:
                raise ConfigError(f"hybrid.weights must be >= 0 with a positive sum, "
                                  f"got {c.weights}")
        if not 0.0 < c.validation_ratio < 1.0:
            raise ConfigError(f"hybrid.validation_ratio must be in (0, 1), got "
                              f"{c.validation_ratio}")
        if c.fit_k < 1 or c.mmr_pool < 1:
            raise ConfigError("hybrid.fit_k and hybrid.mmr_pool must be >= 1")
        if c.mmr_lambda is not None and not 0.0 <= c.mmr_lambda <= 1.0:
            raise ConfigError(f"hybrid.mmr_lambda must be in [0, 1], got {c.mmr_lambda}")

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        self._validate()
        c = self.config
        n_gen = len(c.generators)
        if c.weights is not None:
            weights = np.asarray(c.weights, dtype=np.float64) / float(sum(c.weights))
            validation = np.full(n_gen + 1, np.nan)
        else:
            weights, validation = self._fit_weights(data)
        active = np.flatnonzero(weights > 0)
        log.info("hybrid weights %s", dict(zip([g.name for g in c.generators],
                                              np.round(weights, 3).tolist(), strict=True)))
        generators = GeneratorSet([c.generators[i] for i in active],
                                  keys=active.tolist()).fit(data)
        self.weights_ = weights
        self.active_ = active.astype(np.int64)
        self.validation_ndcg_ = validation
        self.generators_ = generators
        self.mmr_vectors_ = self._genre_vectors(data) if c.mmr_vectors == "genres" else \
            np.zeros((0, 0), dtype=np.float32)

    def _fit_weights(self, data: Interactions) -> tuple[NDArray[np.float64],
                                                       NDArray[np.float64]]:
        c = self.config
        vs = carve_validation(data, c.validation_ratio, seed=c.validation_seed)
        gens = GeneratorSet(c.generators).fit(vs.fit)
        seen = vs.fit.matrix("weight")[vs.user_idx]
        raw = gens.raw_scores(vs.user_idx)
        norm = [normalize_scores(r, c.normalization, exclude=seen) for r in raw]
        pool = pool_candidates(raw, c.n_candidates, exclude=seen)
        for m in norm:
            m[seen.nonzero()] = np.nan  # seen items are never recommended
        weights, value = fit_blend_weights(norm, vs.relevant, vs.n_relevant, k=c.fit_k,
                                           step=c.weight_step, pool=pool)
        defined = vs.n_relevant > 0
        singles = [float(np.mean(ndcg_from_scores(np.where(pool, m, np.nan), vs.relevant,
                                                  vs.n_relevant, c.fit_k)[defined]))
                   for m in norm]
        log.info("validation nDCG@%d: blend %.4f, generators %s", c.fit_k, value,
                 dict(zip(gens.names, np.round(singles, 4).tolist(), strict=True)))
        return weights, np.asarray([value, *singles], dtype=np.float64)

    def _genre_vectors(self, data: Interactions) -> NDArray[np.float32]:
        from sona.models.side import resolve_side_data

        side = resolve_side_data(None, self.config.side_source, self.config.data_dir,
                                 model="hybrid (mmr_vectors: genres)", required=True)
        assert side is not None
        genres, _ = side.catalog.genre_matrix(data.items)
        return np.asarray(genres.toarray(), dtype=np.float32)

    # --- scoring -------------------------------------------------------------------------

    @property
    def weights(self) -> dict[str, float]:
        """Fitted weight of each generator, by name."""
        self._check_fitted()
        return {g.name: float(w) for g, w in zip(self.config.generators, self.weights_,
                                                   strict=True)}

    def fit_metrics(self) -> dict[str, float]:
        """What fitting chose, for experiment tracking: ``weight.<generator>`` and the
        validation nDCG of the blend and of each generator alone (absent with fixed weights).
        """
        self._check_fitted()
        out = {f"weight.{name}": w for name, w in self.weights.items()}
        blend, *singles = self.validation_ndcg_.tolist()
        if not np.isnan(blend):
            k = self.config.fit_k
            out[f"validation_ndcg_at_{k}.blend"] = blend
            out.update({f"validation_ndcg_at_{k}.{g.name}": v
                        for g, v in zip(self.config.generators, singles, strict=True)})
        return out

    def _blend(self, user_idx: IndexArray) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        seen = self.seen_[user_idx]
        raw = self.generators_.raw_scores(user_idx)
        norm = [normalize_scores(r, self.config.normalization, exclude=seen) for r in raw]
        blend = blend_scores(norm, self.weights_[self.active_])
        pool = pool_candidates(raw, self.config.n_candidates, exclude=seen)
        return blend, pool

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        blend, pool = self._blend(user_idx)
        return np.where(pool, 1.0 + _tier(blend), _tier(blend))

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        sims = [normalize_scores(np.asarray(m._similar_items(item_idx), dtype=np.float64),
                                 self.config.normalization)
                for m in self.generators_.models]
        return blend_scores(sims, self.weights_[self.active_])

    def recommend(
        self,
        user_ids: IdArray | list[Any],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: IdArray | list[Any] | None = None,
        exclude: IdArray | list[Any] | None = None,
    ) -> Recommendations:
        """Top-``k`` items per user; MMR re-ranked when ``config.mmr_lambda`` is set.

        See :meth:`Recommender.recommend` for the arguments and errors.
        """
        lam = self.config.mmr_lambda
        if lam is None:
            return super().recommend(user_ids, k, exclude_seen=exclude_seen,
                                     candidates=candidates, exclude=exclude)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        pool = super().recommend(user_ids, max(k, self.config.mmr_pool),
                                 exclude_seen=exclude_seen, candidates=candidates,
                                 exclude=exclude)
        return self.rerank_mmr(pool, k, lam)

    def rerank_mmr(self, pool: Recommendations, k: int, lambda_: float) -> Recommendations:
        """MMR re-ranking of ``pool`` (this model's top lists) to ``k`` items per row."""
        self._check_fitted()
        idx = np.full(pool.ids.shape, -1, dtype=np.int64)
        valid = pool.valid
        idx[valid] = self.items_.numbers(pool.ids[valid])
        picked, gains = mmr(idx, np.where(valid, pool.scores, np.nan), self.item_vectors(),
                            k, lambda_=lambda_)
        return Recommendations(self.items_.ids(picked), gains)

    def item_vectors(self) -> NDArray[np.float32] | sp.csr_matrix:
        """Item vectors of the MMR similarity, ``(n_items, dim)``."""
        self._check_fitted()
        if self.config.mmr_vectors == "genres":
            return self.mmr_vectors_
        return sp.csr_matrix(self.seen_.T, dtype=np.float32)

    def export_scorer(self) -> ScorerExport:
        """Never: a hybrid is a query-time blend of several models, not one scorer graph.

        Raises:
            NotExportableError: always; export the generators or serve the pipeline model.
        """
        n_gen = len(self.active_) if self.is_fitted else len(self.config.generators)
        raise NotExportableError(
            type(self), f"Hybrid blends {n_gen} generators per user at query time (normalised "
            "scores over a pooled candidate set); export its generators or serve it through "
            "the pipeline model")

    # --- persistence ---------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        state = self.generators_.state()
        state.update({"weights": self.weights_, "active": self.active_,
                      "validation_ndcg": self.validation_ndcg_,
                      "mmr_vectors": self.mmr_vectors_})
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = state["weights"]
        self.active_ = state["active"].astype(np.int64)
        self.validation_ndcg_ = state["validation_ndcg"]
        self.mmr_vectors_ = state["mmr_vectors"]
        self.generators_ = GeneratorSet.restore(
            self.config.generators, state, [int(i) for i in self.active_],
            users=self.users_, items=self.items_, seen=self.seen_)


__all__ = ["Hybrid", "HybridConfig"]
