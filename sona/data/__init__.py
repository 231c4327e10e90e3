"""Data model: ids, interactions, catalog, splits and dataset loaders."""

from sona.data.ids import IdIndex
from sona.data.interactions import Catalog, Interactions, load_interactions
from sona.data.splits import (
    Split,
    SplitConfig,
    cold_split,
    leave_last_out,
    make_split,
    random_split,
    stratified_split,
    temporal_split,
)

__all__ = [
    "Catalog",
    "IdIndex",
    "Interactions",
    "Split",
    "SplitConfig",
    "cold_split",
    "leave_last_out",
    "load_interactions",
    "make_split",
    "random_split",
    "stratified_split",
    "temporal_split",
]
