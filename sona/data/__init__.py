"""Data model: ids, interactions, catalog, splits and dataset loaders."""

from sona.data.ids import IdIndex
from sona.data.interactions import Catalog, Interactions, load_interactions

__all__ = ["Catalog", "IdIndex", "Interactions", "load_interactions"]
