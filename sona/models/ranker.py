"""Learned ranker: LambdaRank (LightGBM) over generator scores + user, item, context features.

Burges, "From RankNet to LambdaRank to LambdaMART: An Overview", MSR-TR-2010-82; Ke et al.,
"LightGBM", NeurIPS 2017. Two stages, as in production recommenders:

1. candidate generation: the top ``n_candidates`` items of each generator (registered
   models, :class:`~sona.models.generators.GeneratorSpec`), merged per user;
2. ranking: a gradient-boosted LambdaRank model scores each (user, candidate) pair from
   the generators' per-user z-scores and rank percentiles, user features (activity,
   demographics), item features (popularity, year, genres, genre affinity) and, in the
   learned-context variant (``context_features: true``), hour-of-day / weekday affinity
   between the user's event times and the item's (:mod:`sona.models.ranker_features`).

Training follows the validation protocol of the zoo: generators are fitted on a per-user
stratified part of the *training* data and the ranker learns to put the held-out rest
on top (one LambdaRank query per user); the generators are then refitted on all training
data. The test split is never seen. The generators' scores shift between those two regimes
(more data, sharper scores), which is why every feature is scale-free, and why the score
features are monotone-constrained by default: the ranker may re-weight and gate them but
not invert them.

Scores follow :mod:`sona.models.hybrid`: pooled candidates score ``1 + t(ranker)``, other
items ``t(mean normalised generator score)``, ``t(x) = 1/2 + arctan(x)/π``.

Determinism: ``deterministic=True``, ``force_row_wise``, ``num_threads`` and ``seed`` from
the config. The booster is saved as LightGBM's text model in ``arrays.npz`` (a uint8 array;
no pickle). ONNX: the booster alone converts with ``onnxmltools.convert_lightgbm`` (input
``float[N, n_features]`` in :attr:`Ranker.feature_names_` order); feature assembly stays in
numpy (:mod:`sona.models.ranker_features`), so serving computes features then runs ONNX.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.interactions import Catalog, Interactions
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
from sona.models.ranker_features import (
    USER_FEATURE_NAMES,
    FeatureTables,
    generator_features,
    load_user_side,
    pair_feature_names,
    pair_features,
)
from sona.models.side import ItemSideData, resolve_side_data
from sona.ranking.blend import Normalization, blend_scores, normalize_scores, pool_candidates
from sona.ranking.context import Context
from sona.types import IdArray, IndexArray, Recommendations

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

#: users whose candidates are featurised in one block (bounds n_users x n_items arrays)
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class RankerConfig:
    """LambdaRank settings (defaults chosen on a validation split of ML-100K's training data)."""

    # candidate generators, each a registered model with its parameters
    generators: list[GeneratorSpec] = field(default_factory=default_generators)
    # candidates taken from each generator's top list per user
    n_candidates: int = 50
    # per-user normalisation of generator scores: zscore | minmax | rank | none
    normalization: Normalization = "zscore"
    # share of each user's training interactions the generators see while the ranker learns
    validation_ratio: float = 0.75
    # seed of that split
    validation_seed: int = 7
    # activity percentile + demographics (age, gender, occupation, zip region)
    user_features: bool = True
    # popularity percentile + year + genres + user-genre affinity
    item_features: bool = True
    # learned-context variant: user/item hour-of-day and weekday affinity from timestamps
    context_features: bool = False
    # constrain the ranker to be non-decreasing in each generator's score
    monotone_scores: bool = True
    # boosting rounds
    n_estimators: int = 100
    # shrinkage per round
    learning_rate: float = 0.05
    # leaves per tree
    num_leaves: int = 7
    # minimum (user, item) pairs per leaf
    min_data_in_leaf: int = 500
    # share of features each tree may use, in (0, 1]
    feature_fraction: float = 1.0
    # L2 penalty on leaf values
    lambda_l2: float = 0.0
    # LambdaRank: pairs are formed with items ranked above this position per query
    truncation_level: int = 20
    # LightGBM threads (the model does not depend on it with deterministic=True)
    num_threads: int = 1
    # seed of bagging/feature subsampling
    seed: int = 42
    # dataset whose catalog (year, genres) and users (demographics) are loaded (None: none)
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source
    data_dir: str = "datasets"
    # hours added to UTC timestamps for the context features
    utc_offset_hours: float = 0.0


def _tier(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 + np.arctan(x) / np.pi


class Ranker(Recommender[RankerConfig]):
    """Two-stage recommender: pooled generator candidates re-ranked by LambdaMART.

    Args:
        config: a :class:`RankerConfig`.
        side: item side data (catalog for year and genres); overrides ``side_source``.
        user_side: user demographics (``user_id, age, gender, occupation, zip_code``);
            overrides ``side_source``.
    """

    config_class = RankerConfig

    generators_: GeneratorSet
    tables_: FeatureTables
    booster_: Any
    feature_names_: list[str]
    #: LightGBM gain importance per feature, aligned with feature_names_
    importance_: NDArray[np.float64]

    def __init__(self, config: RankerConfig | None = None, *, side: ItemSideData | None = None,
                 user_side: pd.DataFrame | None = None) -> None:
        super().__init__(config)
        self.side = side
        self.user_side = user_side

    # --- fitting -------------------------------------------------------------------------

    def _validate(self) -> None:
        c = self.config
        check_specs(c.generators, owner="ranker")
        if c.n_candidates < 1:
            raise ConfigError(f"ranker.n_candidates must be >= 1, got {c.n_candidates}")
        if not 0.0 < c.validation_ratio < 1.0:
            raise ConfigError(f"ranker.validation_ratio must be in (0, 1), got "
                              f"{c.validation_ratio}")
        if c.n_estimators < 1 or c.num_leaves < 2 or c.min_data_in_leaf < 1:
            raise ConfigError("ranker needs n_estimators >= 1, num_leaves >= 2 and "
                              "min_data_in_leaf >= 1")
        if not 0.0 < c.feature_fraction <= 1.0 or c.learning_rate <= 0:
            raise ConfigError("ranker.feature_fraction must be in (0, 1] and learning_rate > 0")

    def _side(self) -> tuple[Catalog | None, pd.DataFrame | None]:
        c = self.config
        side = resolve_side_data(self.side, c.side_source, c.data_dir, model="ranker",
                                 required=False)
        users = self.user_side
        if users is None and c.side_source is not None and c.user_features:
            users = load_user_side(c.side_source, c.data_dir)
        return (side.catalog if side is not None else None), users

    def _tables(self, data: Interactions) -> FeatureTables:
        catalog, users = self._side()
        return FeatureTables.build(data, catalog=catalog if self.config.item_features else None,
                                   users_side=users,
                                   utc_offset_hours=self.config.utc_offset_hours)

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        import lightgbm as lgb

        self._validate()
        c = self.config
        vs = carve_validation(data, c.validation_ratio, seed=c.validation_seed)
        gens = GeneratorSet(c.generators).fit(vs.fit)
        tables = self._tables(vs.fit)
        seen_all = vs.fit.matrix("weight")
        xs, ys, groups = [], [], []
        for start in range(0, len(vs.user_idx), _BLOCK):
            block = vs.user_idx[start:start + _BLOCK]
            x, rows, cols, _ = self._candidates(gens, tables, block, seen_all[block])
            y = np.asarray(vs.relevant[start:start + _BLOCK][rows, cols]).ravel()
            counts = np.bincount(rows, minlength=len(block))
            positives = np.bincount(rows, weights=y, minlength=len(block))
            keep_user = positives > 0  # a query without positives has no pairs to learn from
            keep = keep_user[rows]
            xs.append(x[keep])
            ys.append(y[keep])
            groups.append(counts[keep_user])
        x_train = np.vstack(xs)
        y_train = np.concatenate(ys)
        group = np.concatenate(groups)
        names = self._names(gens, tables)
        log.info("ranker: %d pairs, %d queries, %d features, positive rate %.3f",
                 len(y_train), len(group), x_train.shape[1], y_train.mean())
        params = {
            "objective": "lambdarank", "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves, "min_data_in_leaf": c.min_data_in_leaf,
            "feature_fraction": c.feature_fraction, "lambda_l2": c.lambda_l2,
            "lambdarank_truncation_level": c.truncation_level, "deterministic": True,
            "force_row_wise": True, "num_threads": c.num_threads, "seed": c.seed,
            "verbosity": -1,
        }
        if c.monotone_scores:
            mono = [0] * len(names)
            for j in range(len(gens.models)):
                mono[2 * j], mono[2 * j + 1] = 1, -1  # higher score, lower rank pct = better
            params["monotone_constraints"] = mono
        categorical = [names.index("occupation")] if "occupation" in names else []
        train_set = lgb.Dataset(x_train, y_train, group=group, feature_name=names,
                                categorical_feature=categorical or "auto", free_raw_data=True)
        booster = lgb.train(params, train_set, num_boost_round=c.n_estimators)
        self.booster_ = booster
        self.feature_names_ = names
        self.importance_ = booster.feature_importance("gain").astype(np.float64)
        self.generators_ = gens.fit(data)
        self.tables_ = self._tables(data)

    def _names(self, gens: GeneratorSet, tables: FeatureTables) -> list[str]:
        c = self.config
        return pair_feature_names(gens.names, tables.user_names, tables.item_names,
                                  user_features=c.user_features,
                                  item_features=c.item_features,
                                  context_features=c.context_features,
                                  has_genres=tables.item_genres.shape[1] > 0)

    def _candidates(self, gens: GeneratorSet, tables: FeatureTables, user_idx: IndexArray,
                    seen: sp.csr_matrix, context: Context | None = None,
                    ) -> tuple[NDArray[np.float64], IndexArray, IndexArray,
                               tuple[list[NDArray[np.float64]], NDArray[np.bool_]]]:
        """Features of the pooled candidates of ``user_idx``: ``(x, rows, cols, (norm, pool))``."""
        c = self.config
        raw = gens.raw_scores(user_idx)
        norm = [normalize_scores(r, c.normalization, exclude=seen) for r in raw]
        pool = pool_candidates(raw, c.n_candidates, exclude=seen)
        rows, cols = np.nonzero(pool)
        feats = generator_features(_masked(norm, seen), raw, rows, cols)
        hours = days = None
        if context is not None and c.context_features:
            hours, days = _request_histograms(context, len(user_idx))
        feats += pair_features(tables, user_idx, rows, cols, user_features=c.user_features,
                               item_features=c.item_features,
                               context_features=c.context_features,
                               request_hours=hours, request_days=days)
        x = np.column_stack(feats) if feats else np.zeros((len(rows), 0))
        return x, rows, cols, (norm, pool)

    # --- scoring -------------------------------------------------------------------------

    def _score_block(self, user_idx: IndexArray,
                     context: Context | None = None) -> NDArray[np.float64]:
        seen = self.seen_[user_idx]
        x, rows, cols, (norm, pool) = self._candidates(self.generators_, self.tables_,
                                                       user_idx, seen, context)
        fallback = blend_scores(norm, np.full(len(norm), 1.0 / len(norm)))
        out = _tier(fallback)
        if len(rows):
            pred = self.booster_.predict(x, num_threads=self.config.num_threads)
            out[rows, cols] = 1.0 + _tier(np.asarray(pred, dtype=np.float64))
        return out

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        return self._score_block(user_idx)

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        sims = [normalize_scores(np.asarray(m._similar_items(item_idx), dtype=np.float64),
                                 self.config.normalization)
                for m in self.generators_.models]
        return blend_scores(sims, np.full(len(sims), 1.0 / len(sims)))

    def recommend_in_context(self, user_ids: IdArray | list[Any], context: Context,
                             k: int = 10) -> Recommendations:
        """Top-``k`` unseen items when the request's hour/weekday replace the users' habits.

        Only the learned-context variant uses the context; otherwise this equals
        ``recommend(user_ids, k)``.
        """
        from sona.ranking.topk import topk

        self._check_fitted()
        user_idx = self.users_.numbers(user_ids)
        idx, scores = topk(self._score_block(user_idx, context), k,
                           exclude=self.seen_[user_idx])
        return Recommendations(self.items_.ids(idx), scores)

    @property
    def importance(self) -> dict[str, float]:
        """Gain importance of each feature, by name."""
        self._check_fitted()
        return dict(zip(self.feature_names_, self.importance_.tolist(), strict=True))

    def fit_metrics(self) -> dict[str, float]:
        """Gain importance of each feature (``importance.<feature>``), for tracking."""
        return {f"importance.{name}": value for name, value in self.importance.items()}

    def export_scorer(self) -> ScorerExport:
        """Never: the ranker re-ranks pooled generator candidates with a LightGBM booster.

        Raises:
            NotExportableError: always; :meth:`export_booster` converts the booster alone.
        """
        n_gen = len(self.config.generators)
        raise NotExportableError(
            type(self), f"Ranker pools candidates from {n_gen} generators and scores them "
            "with a LightGBM booster over features assembled in numpy per request; export "
            "the booster with Ranker.export_booster() and serve it through the pipeline model")

    def export_booster(self, *, opset: int = 15) -> onnx.ModelProto:
        """The LightGBM booster as an ONNX graph ``features (N, F) float32 -> scores (N, 1)``.

        Converted by ``onnxmltools.convert_lightgbm``; the input columns are
        :attr:`feature_names_` in order (the categorical ``occupation`` code included), the
        output is the booster's raw LambdaRank score, as ``booster_.predict`` returns it.
        Feature assembly stays in numpy (:mod:`sona.models.ranker_features`). Thresholds
        compare in float32 in ONNX: parity with the float64 booster holds to ~1e-7 except
        for inputs that fall between a threshold and its float32 rounding.

        Args:
            opset: ONNX opset of the default domain (onnxmltools 1.16 supports up to 15).

        Raises:
            NotFittedError: before ``fit``.
        """
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        self._check_fitted()
        n_features = len(self.feature_names_)
        graph = convert_lightgbm(self.booster_, name="ranker_booster",
                                 initial_types=[("features", FloatTensorType([None, n_features]))],
                                 target_opset=opset, zipmap=False)
        (output,) = graph.graph.output
        for node in graph.graph.node:  # the converter names its output "variable"
            node.output[:] = ["scores" if name == output.name else name for name in node.output]
        output.name = "scores"
        return graph

    # --- persistence ---------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        text = self.booster_.model_to_string().encode("utf-8")
        state = {f"table__{k}": v for k, v in self.tables_.arrays().items()}
        state.update(self.generators_.state())
        state["booster"] = np.frombuffer(text, dtype=np.uint8).copy()
        state["importance"] = self.importance_
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        import lightgbm as lgb

        text = state["booster"].tobytes().decode("utf-8")
        self.booster_ = lgb.Booster(model_str=text)
        self.feature_names_ = list(self.booster_.feature_name())
        self.importance_ = state["importance"]
        self.generators_ = GeneratorSet.restore(
            self.config.generators, state, list(range(len(self.config.generators))),
            users=self.users_, items=self.items_, seen=self.seen_)
        item_names = [n for n in self.feature_names_ if n.startswith(("item_", "genre_"))]
        self.tables_ = FeatureTables.from_arrays(
            {k[len("table__"):]: v for k, v in state.items() if k.startswith("table__")},
            list(USER_FEATURE_NAMES), item_names)


def _masked(norm: list[NDArray[np.float64]], seen: sp.csr_matrix) -> list[NDArray[np.float64]]:
    """Copies with seen items set to NaN (they are never candidates, nor in rank features)."""
    out = []
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    for n in norm:
        m = n.copy()
        m[rows, seen.indices] = np.nan
        out.append(m)
    return out


def _request_histograms(context: Context, n: int) -> tuple[NDArray[np.float64],
                                                          NDArray[np.float64]]:
    hours = np.zeros((n, 24))
    days = np.zeros((n, 7))
    if context.hour is not None:
        hours[:, context.hour] = 1.0
    if context.weekday is not None:
        days[:, context.weekday] = 1.0
    return hours, days


__all__ = ["Ranker", "RankerConfig"]
