"""Search: vector indexes (``VectorIndex``, exact numpy reference, faiss) and the hybrid
keyword + vector search pipeline (:class:`SearchEngine`) with intent parsing, fusion,
autocomplete, facets and analytics."""

from sona.search.analytics import SearchAnalytics
from sona.search.autocomplete import Autocomplete, AutocompleteConfig, Suggestion
from sona.search.documents import documents_from_catalog, documents_from_items
from sona.search.engine import (
    SearchConfig,
    SearchEngine,
    SearchHit,
    SearchResult,
    load_engine,
    save_engine,
)
from sona.search.exact import ExactIndex, ExactIndexConfig
from sona.search.faiss_index import FaissIndex, FaissIndexConfig
from sona.search.filters import SearchFilters
from sona.search.fusion import RankingConfig, rrf, weighted_sum
from sona.search.index import METRICS, Metric, VectorIndex
from sona.search.intent import ParsedQuery, parse_query
from sona.search.ranking_store import RankingStore
from sona.search.text_index import TextIndex, TextIndexConfig

__all__ = [
    "METRICS",
    "Autocomplete",
    "AutocompleteConfig",
    "ExactIndex",
    "ExactIndexConfig",
    "FaissIndex",
    "FaissIndexConfig",
    "Metric",
    "ParsedQuery",
    "RankingConfig",
    "RankingStore",
    "SearchAnalytics",
    "SearchConfig",
    "SearchEngine",
    "SearchFilters",
    "SearchHit",
    "SearchResult",
    "Suggestion",
    "TextIndex",
    "TextIndexConfig",
    "VectorIndex",
    "documents_from_catalog",
    "documents_from_items",
    "load_engine",
    "parse_query",
    "rrf",
    "save_engine",
    "weighted_sum",
]
