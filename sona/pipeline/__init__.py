"""The served recommender, built from components and evaluated like any model (STYLE §11).

:class:`Pipeline` combines candidate sources (collaborative, content + LoRA, graph,
context), a validation-fitted blend, cold start and MMR; catalog items it was not trained
on join it live as cold items (:mod:`sona.pipeline.cold`). ``sona run`` scores it (model
``pipeline``), ``sona promote`` exports it, and the service ranks with the same object.
"""

from sona.pipeline.cold import CatalogDelta
from sona.pipeline.config import PipelineConfig, Ranked
from sona.pipeline.features import ContentConfig, ItemFeatures, catalog_item_texts, content_vectors
from sona.pipeline.pipeline import Contexts, Pipeline
from sona.pipeline.sources import LABELS, SOURCES, ContentScorer, ContentSource, ModelSource
from sona.pipeline.state import UserState, preference

__all__ = [
    "LABELS", "SOURCES", "CatalogDelta", "ContentConfig", "ContentScorer", "ContentSource",
    "Contexts", "ItemFeatures", "ModelSource", "Pipeline", "PipelineConfig", "Ranked",
    "UserState", "catalog_item_texts", "content_vectors", "preference",
]
