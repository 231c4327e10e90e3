"""Vector search: the ``VectorIndex`` protocol, the exact numpy reference and faiss indexes."""

from sona.search.exact import ExactIndex, ExactIndexConfig
from sona.search.faiss_index import FaissIndex, FaissIndexConfig
from sona.search.index import METRICS, Metric, VectorIndex

__all__ = [
    "METRICS",
    "ExactIndex",
    "ExactIndexConfig",
    "FaissIndex",
    "FaissIndexConfig",
    "Metric",
    "VectorIndex",
]
