"""Item side data (catalog, knowledge graph) for models that use more than interactions.

The Recommender contract keeps ``fit(data: Interactions)``: hyper-parameters live in the
config and nothing else goes to ``fit``. Content and graph models also need the catalog
(titles, genres) and ML-100K's Freebase triples, so they take them as *side data*:

- passed explicitly at construction, ``ContentBased(config, side=ItemSideData(...))``
  (tests, notebooks, serving code that already holds a catalog), or
- named in the config (``side_source: ml-100k``, ``data_dir``) and loaded on ``fit``
  through :func:`load_side_data`, so an experiment YAML can train the model by name
  with no extra wiring. File access still goes through :mod:`sona.data.sources` and
  :mod:`sona.io`; a process loads each source once.

Side data is only read during ``fit``: everything a fitted model needs (item vectors,
graph matrices) is part of its saved state, so ``Recommender.load`` needs no catalog.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from sona.data.interactions import Catalog
from sona.errors import ConfigError

log = logging.getLogger(__name__)

#: dataset names :func:`load_side_data` understands
SideSource = Literal["ml-100k"]


@dataclass(frozen=True)
class ItemSideData:
    """What a model may know about items besides interactions.

    Attributes:
        catalog: one row per item (``item_id``, ``title``, ``year``, ``genres``).
        kg: knowledge-graph triples ``head_id``, ``relation_id``, ``tail_id`` (or None).
        links: ``item_id`` -> ``entity_id`` of the KG (or None).
    """

    catalog: Catalog
    kg: pd.DataFrame | None = None
    links: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.catalog, Catalog):
            raise TypeError(f"catalog must be a sona Catalog, got {type(self.catalog).__name__}")
        if (self.kg is None) != (self.links is None):
            raise ValueError("pass kg and links together (links map items to KG entities)")
        if self.kg is not None and self.links is not None:
            for frame, name, cols in ((self.kg, "kg", ("head_id", "relation_id", "tail_id")),
                                      (self.links, "links", ("item_id", "entity_id"))):
                missing = [c for c in cols if c not in frame.columns]
                if missing:
                    raise ValueError(f"{name} lacks column(s) {missing}; has {list(frame.columns)}")

    @property
    def has_kg(self) -> bool:
        """Whether KG triples and item links are present."""
        return self.kg is not None


@functools.lru_cache(maxsize=4)
def _load_cached(source: str, data_dir: str) -> ItemSideData:
    from sona.data.sources import load_ml100k

    movielens = load_ml100k(Path(data_dir) / "ml-100k")
    log.info("side data %s: %d catalog items, %d KG triples", source, len(movielens.catalog),
             len(movielens.kg))
    return ItemSideData(movielens.catalog, movielens.kg, movielens.links)


def load_side_data(source: str, data_dir: str = "datasets") -> ItemSideData:
    """The catalog and KG of the named dataset (loaded once per process).

    Args:
        source: dataset name; ``"ml-100k"`` reads ``<data_dir>/ml-100k`` (md5-verified).
        data_dir: folder of fetched datasets, as ``dataset.data_dir`` in experiment YAML.

    Raises:
        ConfigError: unknown source.
        DataError: the dataset files are missing or corrupt.
    """
    if source != "ml-100k":
        raise ConfigError(f"unknown side_source {source!r}; valid: 'ml-100k' (or pass side=)")
    return _load_cached(source, str(data_dir))


def resolve_side_data(side: ItemSideData | None, source: str | None, data_dir: str,
                      *, model: str, required: bool) -> ItemSideData | None:
    """Side data given at construction, else the one named by the config, else None.

    Raises:
        ConfigError: ``required`` and neither was given.
    """
    if side is not None:
        return side
    if source is not None:
        return load_side_data(source, data_dir)
    if required:
        raise ConfigError(f"{model} needs item side data: pass side=ItemSideData(catalog, ...) "
                          "or set side_source (e.g. 'ml-100k') in its config")
    return None


__all__ = ["ItemSideData", "SideSource", "load_side_data", "resolve_side_data"]
