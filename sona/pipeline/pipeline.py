"""The served recommender: sources, blend, LoRA, context, cold start and MMR as one model.

:class:`Pipeline` is a :class:`~sona.models.base.Recommender` like any other: ``sona run``
fits and scores it (model ``pipeline``), ``sona promote`` exports it, and the service
loads the exported pipeline and calls :meth:`Pipeline.rank` with the states it keeps
(profiles, events, adapters). Its graphs (scorers, content + LoRA) are exported to ONNX
when it is fitted and run in ONNX Runtime in both places (:mod:`sona.pipeline.graphs`), so
the served lists are the evaluated ones item for item. lenskit's rule: the pipeline you
evaluate is the pipeline you deploy.

Sources (SPEC §2.7): ``collaborative`` (a registered model, ALS by default),
``graph_based`` (LightGCN by default), ``content_based`` (preference vector · content
vectors) and ``context`` (SPEC §2.6 rules over hour, weekday, time of day, device, mood,
viewing_with). Weights and the MMR λ are chosen on a validation split carved from the
training data when the config leaves them unset (:mod:`sona.pipeline.tuning`); the test
split is never looked at.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona import tracing
from sona.data.interactions import Interactions
from sona.errors import ConfigError, UnknownIdError
from sona.lora.adapter import LoRAConfig, init_base_matrix
from sona.models.base import Recommender
from sona.models.export import NotExportableError, ScorerExport
from sona.models.generators import GeneratorSet, GeneratorSpec
from sona.models.side import ItemSideData, resolve_side_data
from sona.pipeline.cold import ROWS_GRAPH, CatalogItems
from sona.pipeline.config import PipelineConfig, Ranked
from sona.pipeline.features import ContentConfig, ItemFeatures, content_vectors
from sona.pipeline.graphs import GraphSession, OnnxConfig, graph_bytes
from sona.pipeline.ranking import (
    Blend,
    allowed_mask,
    blend,
    cold_start,
    pad_rows,
    rank_pool,
    watched_matrix,
)
from sona.pipeline.sources import SOURCES, ContentSource, Graph, ModelSource, rows_reference
from sona.pipeline.state import UserState, preference
from sona.profile import ViewingEvent
from sona.ranking.context import Context, ContextStats, context_scores
from sona.ranking.rerank import unit_rows
from sona.types import IdArray, IndexArray, Recommendations

log = logging.getLogger(__name__)

#: largest float64 copy of the content vectors a pipeline keeps for MMR (:meth:`_unit_vectors`)
_UNIT_CACHE_BYTES = 256 * 2**20

Contexts = Context | Sequence[Context | None] | None


class Pipeline(CatalogItems, Recommender[PipelineConfig]):
    """SPEC §2.7's hybrid recommender, evaluated offline and served online as one object.

    Args:
        config: settings.
        side: item side data (catalog, KG); default: the dataset named by ``side_source``.
    """

    config_class = PipelineConfig

    features_: ItemFeatures
    models_: GeneratorSet
    #: (4,) weight per SOURCES entry
    weights_: NDArray[np.float64]
    #: [λ] of MMR (1 = off)
    mmr_lambda_: NDArray[np.float64]
    #: what validation chose: nDCG of the blend, each source and each λ (NaN: not tuned)
    validation_: NDArray[np.float64]
    #: ONNX bytes of every graph, by name (model sources and "content")
    graphs_: dict[str, NDArray[np.uint8]]

    def __init__(self, config: PipelineConfig | None = None, *,
                 side: ItemSideData | None = None) -> None:
        super().__init__(config)
        self.side = side
        self._sessions: dict[str, Graph] = {}
        self._onnx_threads = 1
        self._reference_only = False

    # --- fitting -----------------------------------------------------------------------

    def _check_config(self) -> None:
        c = self.config
        if c.weights is not None:
            unknown = sorted(set(c.weights) - set(SOURCES))
            if unknown:
                raise ConfigError(f"pipeline.weights: unknown source(s) {unknown}; sources are "
                                  f"{', '.join(SOURCES)}")
            if any(w < 0 for w in c.weights.values()) or sum(c.weights.values()) <= 0:
                raise ConfigError(f"pipeline.weights must be >= 0 with a positive sum, got "
                                  f"{c.weights}")
            if c.graph is None and c.weights.get("graph_based", 0.0) > 0:
                raise ConfigError("pipeline.weights.graph_based > 0 but pipeline.graph is null")
        if c.mmr_lambda is not None and not 0.0 <= c.mmr_lambda <= 1.0:
            raise ConfigError(f"pipeline.mmr_lambda must be in [0, 1], got {c.mmr_lambda}")
        if not c.mmr_grid or any(not 0.0 <= x <= 1.0 for x in c.mmr_grid):
            raise ConfigError(f"pipeline.mmr_grid must list values in [0, 1], got {c.mmr_grid}")
        if c.mmr_pool_factor < 1 or c.fit_k < 1:
            raise ConfigError("pipeline.mmr_pool_factor and pipeline.fit_k must be >= 1")
        if c.lora_boost < 0:
            raise ConfigError(f"pipeline.lora_boost must be >= 0, got {c.lora_boost}")
        if not 0.0 < c.validation_ratio < 1.0:
            raise ConfigError(f"pipeline.validation_ratio must be in (0, 1), got "
                              f"{c.validation_ratio}")
        if c.side_source is None and self.side is None and c.content.source != "interactions":
            raise ConfigError("pipeline: without side data (side_source: null) the content "
                              "source must be 'interactions'")

    def _specs(self) -> list[GeneratorSpec]:
        c = self.config
        specs = [GeneratorSpec("collaborative", c.collaborative.model, c.collaborative.params)]
        if c.graph is not None:
            specs.append(GeneratorSpec("graph_based", c.graph.model, c.graph.params))
        return specs

    def _side(self) -> ItemSideData | None:
        c = self.config
        return resolve_side_data(self.side, c.side_source, c.data_dir, model="pipeline",
                                 required=c.content.source != "interactions")

    def build_features(self, data: Interactions,
                       vectors: tuple[NDArray[np.float32], dict[str, Any]] | None = None,
                       ) -> ItemFeatures:
        """Item features for ``data`` (content vectors and their description computed unless
        given)."""
        c = self.config
        side = self._side()
        matrix = data.matrix("weight")
        if vectors is None:
            vectors = content_vectors(
                data.items, c.content, catalog=side.catalog if side is not None else None,
                matrix=matrix, kg=side.kg if side is not None else None,
                links=side.links if side is not None else None)
            log.info("content vectors: %s", vectors[1])
        popularity = np.asarray((matrix > 0).sum(axis=0), np.float32).ravel()
        stats = ContextStats.from_interactions(data, side.catalog if side is not None else None)
        base = init_base_matrix(vectors[0].shape[1], c.lora)
        return ItemFeatures(np.asarray(vectors[0], np.float32), popularity, stats, base,
                            float(c.lora.scaling), dict(vectors[1]))

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        from sona.pipeline.tuning import tune

        self._check_config()
        c = self.config
        features = self.build_features(data)
        weights = np.array([(c.weights or {}).get(s, 0.0) for s in SOURCES], np.float64)
        lam = 1.0 if c.mmr_lambda is None else float(c.mmr_lambda)
        validation = np.full(len(SOURCES) + 1 + len(c.mmr_grid), np.nan)
        if c.weights is None or c.mmr_lambda is None:
            weights, lam, validation = tune(self, data, features)
        self.features_ = features
        self.weights_ = weights
        self.mmr_lambda_ = np.asarray([lam], np.float64)
        self.validation_ = validation
        self.models_ = GeneratorSet(self._specs()).fit(data)
        self._sessions = {}
        self.graphs_ = self.compile_graphs(c.onnx)
        log.info("pipeline weights %s, MMR λ %.2f",
                 dict(zip(SOURCES, np.round(weights, 3).tolist(), strict=True)), lam)

    @classmethod
    def around(cls, model: Recommender[Any], data: Interactions, *,
               side: ItemSideData | None = None, content: ContentConfig | None = None,
               lora: LoRAConfig | None = None, onnx: OnnxConfig | None = None) -> Pipeline:
        """A fitted model served as the pipeline's only ranking source.

        Weights ``{collaborative: 1}`` and no MMR, so the pipeline's lists are the model's own
        for every user above the cold-start threshold (colder users get SPEC §2.8's
        cold-start list); content vectors, cold start, LoRA and context
        still back the profile, cold-start and score endpoints. This is how a champion that
        is a plain model (ALS, EASE, ...) is served. Its scores run in ONNX Runtime, so they
        match the model's own within the export's parity tolerance (and lists up to ties).

        Args:
            model: a fitted model that declares its ONNX scorer.
            data: the interactions it was fitted on (same user and item index).
            side: catalog and KG for content vectors and genres; None needs
                ``content.source="interactions"``.
            content, lora: content vector source and adapter shape.
            onnx: how its graphs are exported.

        Raises:
            NotExportableError: the model cannot be a scorer graph.
            DataError: ``data`` is not what the model was fitted on.
        """
        from sona.config import to_dict
        from sona.errors import DataError
        from sona.models.export import scorer_export
        from sona.models.registry import MODELS

        model._check_fitted()
        scorer_export(model)  # fail first, with the model's own reason
        if data.users != model.users_ or data.items != model.items_:
            raise DataError(f"the interactions given are not those {type(model).__name__} was "
                            "fitted on (user or item index differs)", path=data.source)
        name = next(key for key, klass in MODELS.items() if klass is type(model))
        spec = GeneratorSpec("collaborative", name, to_dict(model.config))
        content = content or ContentConfig(source="interactions" if side is None else "text")
        config = PipelineConfig(collaborative=spec, graph=None, content=content,
                                weights={"collaborative": 1.0}, mmr_lambda=1.0,
                                lora=lora or LoRAConfig(), onnx=onnx or OnnxConfig(),
                                side_source=None)
        pipeline = cls(config, side=side)
        pipeline._check_config()
        pipeline.features_ = pipeline.build_features(data)
        pipeline.weights_ = np.array([1.0, 0.0, 0.0, 0.0])
        pipeline.mmr_lambda_ = np.ones(1)
        pipeline.validation_ = np.full(len(SOURCES) + 1 + len(config.mmr_grid), np.nan)
        pipeline.models_ = GeneratorSet.wrap([spec], [model])
        pipeline.users_, pipeline.items_, pipeline.seen_ = model.users_, model.items_, \
            model.seen_
        pipeline.graphs_ = pipeline.compile_graphs(config.onnx)
        return pipeline

    def export_scorer(self) -> ScorerExport:
        """Never one graph: a pipeline exports as a bundle of graphs plus its own arrays.

        Raises:
            NotExportableError: always; :func:`sona.serving.export_onnx.export_model` exports
                each source's scorer graph and the content graph with the pipeline directory.
        """
        raise NotExportableError(
            type(self), "a pipeline runs several graphs (one scorer per model source and the "
            "content + LoRA graph) around its own blend; export it with "
            "sona.serving.export_onnx.export_model, which writes the graphs and the pipeline")

    # --- fitted parts ------------------------------------------------------------------

    def _check_parts(self) -> None:
        # during _fit the sources exist before the base class records the id indexes
        if not hasattr(self, "models_") or not hasattr(self, "features_"):
            self._check_fitted()

    @property
    def weights(self) -> dict[str, float]:
        """Blend weight of each source (before per-user renormalisation)."""
        self._check_fitted()
        return {s: float(w) for s, w in zip(SOURCES, self.weights_, strict=True)}

    @property
    def mmr_lambda(self) -> float:
        """The MMR λ in use (1: no re-ranking)."""
        self._check_fitted()
        return float(self.mmr_lambda_[0])

    def model_sources(self) -> list[ModelSource]:
        """The collaborative (and graph) sources, in blend order."""
        self._check_parts()
        cached = getattr(self, "_model_sources", None)
        if cached is None or cached[0] is not self.models_:
            built = [ModelSource(spec.name, model) for spec, model in
                     zip(self.models_.specs, self.models_.models, strict=True)]
            self._model_sources = (self.models_, built)
            return built
        return list(cached[1])

    def content_source(self) -> ContentSource:
        """The content + LoRA source over the trained items (its exported graph's)."""
        self._check_parts()
        delta = self.delta()
        return ContentSource(self.features_ if delta is None else delta.trained_features)

    def reference_graphs(self) -> dict[str, Graph]:
        """Every graph's Python reference, by name (``content`` and one per model source)."""
        return {name: self._reference_graph(name)
                for name in [*(m.name for m in self.model_sources()), "content"]}

    def _reference_graph(self, name: str) -> Graph:
        if name == "content":
            return self.content_source().reference_graph()
        if name == ROWS_GRAPH:
            return rows_reference
        return next(m for m in self.model_sources() if m.name == name).reference_graph()

    def compile_graphs(self, config: OnnxConfig) -> dict[str, NDArray[np.uint8]]:
        """Export every graph to ONNX bytes (scorers as the models declare them, content)."""
        import torch

        out = {}
        batch = {0: "batch"}
        for source in self.model_sources():
            spec = source.export
            out[source.name] = graph_bytes(spec.module, (torch.zeros(2, spec.input_dim),),
                                           [spec.input_name], ["scores"],
                                           {spec.input_name: batch}, config)
        f = self.features_
        out["content"] = graph_bytes(
            self.content_source().module(),
            (torch.zeros(2, f.dim), torch.zeros(2, f.dim, f.lora_rank)),
            ["preference", "lora_b"], ["content", "lora"],
            {"preference": batch, "lora_b": batch}, config)
        return out

    def set_onnx_threads(self, threads: int) -> None:
        """Intra-op threads of each ONNX Runtime session (sessions are rebuilt lazily)."""
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._onnx_threads = int(threads)
        self._sessions = {}

    def graph(self, name: str) -> Graph:
        """The graph ``name`` as the pipeline runs it: its ONNX Runtime session (or, while
        tuning on validation, the Python reference).

        Raises:
            ConfigError: the pipeline has no such graph.
        """
        found = self._sessions.get(name)
        if found is not None:
            return found
        if self._reference_only:  # validation tuning: the Python references, no export
            found = self._sessions[name] = self._reference_graph(name)
        else:
            if name not in self.graphs_:
                raise ConfigError(f"pipeline has no graph {name!r}; it has "
                                  f"{sorted(self.graphs_)}")
            found = self._sessions[name] = GraphSession(self.graphs_[name],
                                                        threads=self._onnx_threads)
        return found

    def popularity_share(self) -> NDArray[np.float64]:
        """Each item's training popularity relative to the most popular item, in [0, 1]:
        how cold users are ranked (SPEC §2.8)."""
        pop = self.features_.popularity.astype(np.float64)
        top = float(pop.max(initial=0.0))
        return pop / top if top > 0 else pop

    # --- user states -------------------------------------------------------------------

    def history(self, user_idx: int) -> NDArray[np.int64]:
        """Training items of a known user (empty for -1)."""
        if user_idx < 0:
            return np.empty(0, np.int64)
        seen = self.seen_
        return seen.indices[seen.indptr[user_idx]:seen.indptr[user_idx + 1]].astype(np.int64)

    def state(self, user_id: Any, *, events: Sequence[ViewingEvent] = (),
              lora_b: NDArray[np.float32] | None = None, adapter_version: int | None = None,
              signup_genres: Sequence[str] = (), now: float | None = None) -> UserState:
        """The state of one user, known to the pipeline or not, with stored events.

        The watch count is the number of distinct titles in the training history and the
        events; events on items the pipeline does not know count towards it only.
        """
        self._check_fitted()
        user_idx = int(self.users_.numbers([user_id], missing="negative")[0])
        history = self.history(user_idx)
        event_idx = self.items_.numbers([e.content_id for e in events], missing="negative") \
            if events else np.empty(0, np.int64)
        pref = preference(history, events, event_idx, self.features_.vectors,
                          now=time.time() if now is None else now) if len(history) or \
            len(event_idx) else np.zeros(self.features_.dim, np.float32)
        known = np.asarray(event_idx[event_idx >= 0], np.int64)
        watched = np.union1d(history, known) if len(known) else history
        # titles, not rows: once the closed loop trains on served events a title is both a
        # training row and a stored event, and counting it twice took users out of cold start
        unknown = {events[int(j)].content_id for j in np.flatnonzero(event_idx < 0)}
        return UserState(str(user_id), user_idx, watched.astype(np.int64), known,
                         len(watched) + len(unknown), pref, lora_b, adapter_version,
                         tuple(signup_genres))

    def states(self, user_ids: IdArray | list[Any]) -> list[UserState]:
        """States of users the pipeline was trained on, from training data alone.

        Raises:
            UnknownIdError: an id the pipeline was not trained with.
        """
        self._check_fitted()
        return self._states_idx(self.users_.numbers(user_ids))

    def _states_idx(self, user_idx: IndexArray) -> list[UserState]:
        vectors = self.features_.vectors
        out = []
        for u in np.asarray(user_idx, np.int64):
            history = self.history(int(u))
            pref = preference(history, (), np.empty(0, np.int64), vectors, now=0.0)
            out.append(UserState(str(self.users_.id(int(u))), int(u), history,
                                 np.empty(0, np.int64), len(history), pref))
        return out

    # --- ranking -----------------------------------------------------------------------

    def context_rows(self, contexts: Contexts, n: int) -> tuple[NDArray[np.float64],
                                                                NDArray[np.bool_]]:
        """Context scores ``(B, n_items)`` and which users have a context rule that applies."""
        n_items = self.features_.n_items
        if contexts is None or isinstance(contexts, Context):
            rows: list[Context | None] = [contexts] * n
        else:
            rows = list(contexts)
            if len(rows) != n:
                raise ValueError(f"{len(rows)} contexts for {n} users")
        out = np.zeros((n, n_items))
        applies = np.zeros(n, bool)
        cache: dict[Context, NDArray[np.float64]] = {}
        for i, ctx in enumerate(rows):
            if ctx is None or ctx.is_empty:
                continue
            if ctx not in cache:
                cache[ctx] = context_scores(self.features_.context, ctx)
            out[i] = cache[ctx]
            applies[i] = bool(np.any(out[i] > 0))
        return out, applies

    def blend_states(self, states: Sequence[UserState], contexts: Contexts = None,
                     weights: NDArray[np.float64] | None = None,
                     lora_boost: float | None = None, *,
                     watched: sp.csr_matrix | None = None) -> Blend:
        """Every source's scores for ``states``, blended (no exclusions, no MMR).

        ``watched`` is ``watched_matrix(states, n_items)`` when the caller has built it
        already (:meth:`rank` needs it for the exclusions too).
        """
        self._check_fitted()
        w = self.weights_ if weights is None else weights
        raw: dict[str, NDArray[np.floating]] = {}
        applies: dict[str, NDArray[np.bool_]] = {}
        # one span per source and for the blend (no-ops unless tracing is configured)
        for source in self.model_sources():
            with tracing.span("pipeline.source") as span:
                if span.is_recording():
                    span.set_attribute("sona.source", source.name)
                raw[source.name], applies[source.name] = source.scores(
                    states, self.graph(source.name))
        with tracing.span("pipeline.source") as span:
            if span.is_recording():
                span.set_attribute("sona.source", "content_based")
            content_source = self.content_source()
            content, lora, applies["content_based"], has_lora = content_source.scores(
                states, self.graph("content"))
            delta = self.delta()
            if delta is not None and delta.ids:  # cold catalog items: the content_rows graph
                extra, extra_lora = content_source.row_scores(
                    states, self.graph(ROWS_GRAPH), delta.row_buffers)
                content, lora = np.hstack([content, extra]), np.hstack([lora, extra_lora])
        raw["content_based"] = content
        with tracing.span("pipeline.source") as span:
            if span.is_recording():
                span.set_attribute("sona.source", "context")
            raw["context"], applies["context"] = self.context_rows(contexts, len(states))
        n_items = self.features_.n_items
        for s in SOURCES:  # a source the config leaves out (no graph model) never applies
            raw.setdefault(s, np.zeros((len(states), n_items), np.float32))
            applies.setdefault(s, np.zeros(len(states), bool))
        with tracing.span("pipeline.blend"):
            return blend([raw[s] for s in SOURCES], [applies[s] for s in SOURCES], list(w),
                         SOURCES,
                         watched_matrix(states, n_items) if watched is None else watched,
                         lora=lora, has_lora=has_lora,
                         lora_boost=self.config.lora_boost if lora_boost is None
                         else lora_boost)

    def _unit_vectors(self) -> NDArray[np.float64] | None:
        """MMR's unit content vectors, ``unit_rows(features_.vectors)``, kept per vector matrix.

        Normalising each request's pool again was ~10% of a served ranking (issue 12); the
        rows' bits are the same either way. None above :data:`_UNIT_CACHE_BYTES` (a large
        catalog: MMR normalises each pool's rows then).
        """
        vectors = self.features_.vectors
        cached = getattr(self, "_unit_cache", None)
        if cached is not None and cached[0] is vectors:
            return cast(NDArray[np.float64], cached[1])
        if vectors.shape[0] * vectors.shape[1] * 8 > _UNIT_CACHE_BYTES:
            return None
        unit = unit_rows(vectors)
        self._unit_cache = (vectors, unit)
        return unit

    def rank(self, states: Sequence[UserState], k: int = 10, *, contexts: Contexts = None,
             exclude_watched: bool = True, candidates: IndexArray | None = None,
             exclude_items: IndexArray | None = None, mmr_lambda: float | None = None,
             weights: NDArray[np.float64] | None = None,
             lora_boost: float | None = None) -> Ranked:
        """Ranked lists for a batch of user states: what ``recommend`` and the service return.

        Args:
            states: the users (:meth:`state`, :meth:`states`).
            k: list length.
            contexts: one request context for all users, or one per user.
            exclude_watched: drop watched items (training + stored events).
            candidates: item indices to rank among; exclude_items: never return these.
            mmr_lambda: override of the fitted λ (a request's diversity setting).
            weights: override of the fitted weights, ``(4,)`` in :data:`SOURCES` order
                (validation tuning, A/B arms).
            lora_boost: override of the configured LoRA multiplier (A/B arms).
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        lam = self.mmr_lambda if mmr_lambda is None else float(mmr_lambda)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1], got {lam}")
        delta = self.delta()
        if delta is not None:  # removed catalog items never come back
            candidates, exclude_items = delta.allowed(candidates, exclude_items)
        n, n_items = len(states), self.features_.n_items
        per_user = None if contexts is None or isinstance(contexts, Context) else list(contexts)
        if per_user is not None and len(per_user) != n:  # checked before cold users split off
            raise ValueError(f"{len(per_user)} contexts for {n} users")
        cold = [s.is_cold(self.config.cold_start_max_events) for s in states]
        warm = [i for i in range(n) if not cold[i]]
        idx = np.full((n, k), -1, np.int64)
        scores = np.full((n, k), np.nan)
        relevance = np.full((n, k), np.nan)
        contrib = np.zeros((n, len(SOURCES), k))
        lora = np.zeros((n, k), np.float32)
        strategy = ["personalized"] * n
        based_on = [""] * n
        if warm:
            ctx = contexts if per_user is None else [per_user[i] for i in warm]
            wstates = [states[i] for i in warm]
            watched = watched_matrix(wstates, n_items)
            mixed = self.blend_states(wstates, ctx, weights, lora_boost, watched=watched)
            exclude = watched if exclude_watched else None
            pool = max(k * self.config.mmr_pool_factor, k) if lam < 1.0 else k
            with tracing.span("pipeline.mmr") as span:  # top-k of the pool, then MMR
                if span.is_recording():
                    span.set_attribute("sona.mmr_lambda", lam)
                    span.set_attribute("sona.pool", pool)
                top, top_scores = rank_pool(mixed.scores, k, pool=pool, exclude=exclude,
                                            candidates=candidates,
                                            exclude_items=exclude_items,
                                            vectors=self.features_.vectors, mmr_lambda=lam,
                                            unit_vectors=self._unit_vectors())
            rows = np.asarray(warm)
            valid = top >= 0
            safe = np.where(valid, top, 0)
            idx[rows], scores[rows] = top, top_scores
            relevance[rows] = np.where(valid, np.take_along_axis(mixed.scores, safe, 1), np.nan)
            norm = np.nan_to_num(np.take_along_axis(
                mixed.normalized, np.broadcast_to(safe[:, None, :], (len(warm), len(SOURCES),
                                                                     k)), 2))
            contrib[rows] = np.where(valid[:, None, :], norm * mixed.weights[:, :, None], 0.0)
            lora[rows] = np.where(valid, np.take_along_axis(mixed.lora, safe, 1), 0.0)
        # cold lists pick among the same allowed items (a filter still fills k slots)
        allowed = allowed_mask(n_items, candidates, exclude_items)
        for i in (i for i in range(n) if cold[i]):
            with tracing.span("pipeline.cold_start"):
                picked, conf, strategy[i], based_on[i] = cold_start(
                    states[i], self.features_.popularity, self.features_.genres, k,
                    exclude_watched=exclude_watched, allowed=allowed)
            # list scores: popularity share, as _score_users ranks cold users (score() agrees
            # with recommend); relevance: the SPEC's cold-start confidence for the API
            row_idx, row_sc = pad_rows([picked], [self.popularity_share()[picked]], k)
            _, row_conf = pad_rows([picked], [conf], k)
            idx[i], scores[i], relevance[i] = row_idx[0], row_sc[0], row_conf[0]
        return Ranked(idx, scores, relevance, contrib, lora, strategy, based_on, SOURCES)

    def recommend(
        self,
        user_ids: IdArray | list[Any],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: IdArray | list[Any] | None = None,
        exclude: IdArray | list[Any] | None = None,
        context: Contexts = None,
    ) -> Recommendations:
        """Top-``k`` items per user, exactly as the service ranks them for these users.

        Args:
            user_ids, k, exclude_seen, candidates, exclude: see
                :meth:`Recommender.recommend`.
            context: one request context for every user, or one per user.
        """
        self._check_fitted()
        if candidates is not None and exclude is not None:
            raise ValueError("pass either candidates or exclude, not both")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        states = self.states(user_ids)
        cand = None if candidates is None else self.items_.numbers(candidates)
        excl = None if exclude is None else self.items_.numbers(exclude)
        ranked = self.rank(states, k, contexts=context, exclude_watched=exclude_seen,
                           candidates=cand, exclude_items=excl)
        return Recommendations(self.items_.ids(ranked.idx), ranked.scores)

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        states = self._states_idx(user_idx)
        scores = self.blend_states(states).scores
        for i, s in enumerate(states):  # cold users rank by popularity (SPEC §2.8)
            if s.is_cold(self.config.cold_start_max_events):
                scores[i] = self.popularity_share()
        return scores

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.floating]:
        delta = self.delta()
        if delta is None:
            return self.models_.models[0]._similar_items(item_idx)
        gone = np.intersect1d(item_idx, delta.removed)
        if len(gone):  # a removed item is no longer in the catalog
            raise UnknownIdError("item", self.items_.ids(gone).tolist())
        return delta.similarity(self.models_.models[0], item_idx, self.features_.vectors)

    def fit_metrics(self) -> dict[str, float]:
        """What fitting chose, for tracking: weights, λ, validation nDCG per source and λ."""
        self._check_fitted()
        out: dict[str, float] = {f"weight.{s}": w for s, w in self.weights.items()}
        out["mmr_lambda"] = self.mmr_lambda
        v = self.validation_
        if not np.isnan(v[0]):
            k = self.config.fit_k
            out[f"validation_ndcg_at_{k}.blend"] = float(v[0])
            for s, value in zip(SOURCES, v[1:1 + len(SOURCES)], strict=True):
                out[f"validation_ndcg_at_{k}.{s}"] = float(value)
            for lam, value in zip(self.config.mmr_grid, v[1 + len(SOURCES):], strict=True):
                out[f"validation_ndcg_at_{k}.mmr_{lam:g}"] = float(value)
        return out

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Save the trained pipeline: cold catalog items come from the catalog again after
        load (:meth:`add_items`), removals too."""
        delta = self.delta()
        if delta is None:
            super().save(path)
        else:
            self.trained_copy(delta).save(path)

    def _state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = dict(self.models_.state())
        state.update(self.features_.state())
        state.update({"weights": self.weights_, "mmr_lambda": self.mmr_lambda_,
                      "validation": self.validation_})
        state.update({f"graph__{name}": data for name, data in self.graphs_.items()})
        return state

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.features_ = ItemFeatures.restore(state)
        self.weights_ = np.asarray(state["weights"], np.float64)
        self.mmr_lambda_ = np.asarray(state["mmr_lambda"], np.float64)
        self.validation_ = np.asarray(state["validation"], np.float64)
        specs = self._specs()
        self.models_ = GeneratorSet.restore(specs, state, list(range(len(specs))),
                                            users=self.users_, items=self.items_,
                                            seen=self.seen_)
        self.graphs_ = {k[len("graph__"):]: np.asarray(v, np.uint8) for k, v in state.items()
                        if k.startswith("graph__")}
        self._sessions = {}


__all__ = ["Contexts", "Pipeline"]
