"""Settings and results of the served recommender: :class:`PipelineConfig` (the
``recommendation`` block that is evaluated, exported and served) and :class:`Ranked` (what
:meth:`~sona.pipeline.Pipeline.rank` returns for a batch of users)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from sona.lora.adapter import LoRAConfig
from sona.models.generators import GeneratorSpec
from sona.pipeline.features import ContentConfig
from sona.pipeline.graphs import OnnxConfig
from sona.types import IndexArray


def default_graph_source() -> GeneratorSpec:
    """LightGCN with the zoo's tuned settings (the graph-based source)."""
    return GeneratorSpec("graph_based", "lightgcn", {"epochs": 30, "lr": 0.015, "l2": 0.001})


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """The served recommender's settings: the ``recommendation`` block that is evaluated,
    exported and served (defaults: the SPEC's four sources, weights and MMR λ fitted)."""

    # collaborative source: a registered model that declares its ONNX scorer
    collaborative: GeneratorSpec = field(
        default_factory=lambda: GeneratorSpec("collaborative", "als"))
    # graph source (None: no graph source)
    graph: GeneratorSpec | None = field(default_factory=default_graph_source)
    # item content vectors (content source, LoRA and MMR similarity)
    content: ContentConfig = field(default_factory=ContentConfig)
    # blend weight per source (collaborative, content_based, graph_based, context), renormalised
    # over the sources that apply to a user; None: chosen on validation
    weights: dict[str, float] | None = None
    # MMR relevance weight λ in [0, 1] (1 = no re-ranking); None: chosen on validation as the
    # most diverse value of mmr_grid whose validation nDCG is within mmr_tolerance of λ = 1
    mmr_lambda: float | None = None
    # λ values tried on validation
    mmr_grid: list[float] = field(default_factory=lambda: [1.0, 0.98, 0.95, 0.9, 0.85, 0.8,
                                                           0.7])
    # validation nDCG a more diverse λ may give up
    mmr_tolerance: float = 0.002
    # validation nDCG that giving weight to every source may give up: after the best weights
    # are found, each source left at 0 takes the largest share (of blend_shares) that keeps
    # the blend within this of the best
    blend_tolerance: float = 0.002
    # shares tried per source left at 0, largest first
    blend_shares: list[float] = field(default_factory=lambda: [0.2, 0.15, 0.1, 0.05])
    # MMR re-ranks the best mmr_pool_factor x k items of the blend
    mmr_pool_factor: int = 5
    # LoRA multiplier: score · (1 + lora_boost · lora) for users with an adapter. SPEC: 0.3;
    # off by default because `sona bench lora` measures no gain from it over the pipeline
    # with event fold-in (+0.0000 nDCG@10, CI [-0.0002, +0.0002], benchmarks/README.md);
    # an A/B arm or this field switches it on
    lora_boost: float = 0.0
    # adapter shape; the shared base matrix A is drawn from lora.seed
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    # how the graphs (scorers, content + LoRA) are exported; sona run evaluates with them
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    # users with at most this many watches get the cold-start list (SPEC §2.8: 5)
    cold_start_max_events: int = 5
    # validation split carved from the training data: kept share per user and seed
    validation_ratio: float = 0.75
    validation_seed: int = 7
    # cut-off of the validation nDCG the weights and λ maximise
    fit_k: int = 10
    # resolution of the fitted weights
    weight_step: float = 0.05
    # dataset whose catalog gives content vectors, genres and runtimes (None: no catalog;
    # content.source must then be "interactions")
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source
    data_dir: str = "datasets"


@dataclass(frozen=True, eq=False)
class Ranked:
    """Ranked lists of a batch with what produced them (item indices, ``(B, k)``).

    Attributes:
        idx: item indices, ``PAD_IDX`` padded.
        scores: list scores (MMR gains when re-ranked, else the blend), NaN padded.
        relevance: the boosted blend score of each listed item (cold start: confidence).
        contributions: ``(B, S, k)`` weight x normalised score of each source.
        lora: ``(B, k)`` LoRA term of each listed item.
        strategy: per user "personalized", "cold_start_genres" or "cold_start_trending".
        based_on: per user the cold-start reason ("" for personalised lists).
        sources: source names of the contributions' second axis.
    """

    idx: IndexArray
    scores: NDArray[np.float64]
    relevance: NDArray[np.float64]
    contributions: NDArray[np.float64]
    lora: NDArray[np.float32]
    strategy: list[str]
    based_on: list[str]
    sources: tuple[str, ...]


__all__ = ["PipelineConfig", "Ranked", "default_graph_source"]
