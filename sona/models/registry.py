"""Model registry: the names an experiment YAML may use for ``models[i].model``.

Model owners add one line to ``_BASE`` per model (``_COMPOSED`` for models of packages
above this one, such as the served pipeline). Experiments build models by name
with :func:`build_model`, whose parameters are checked strictly against the model's config
dataclass, so a typo in a YAML fails at load time with the valid keys listed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sona.config import from_dict
from sona.errors import ConfigError
from sona.models.als import ALS
from sona.models.base import Recommender, _import_class
from sona.models.bpr import BPR
from sona.models.cold_start import ColdStart
from sona.models.content import ContentBased
from sona.models.ease import EASE
from sona.models.graph_walk import GraphWalk
from sona.models.hybrid import Hybrid
from sona.models.item_knn import ItemKNN
from sona.models.lightgcn import LightGCN
from sona.models.popularity import Popularity
from sona.models.ranker import Ranker
from sona.models.two_tower import TwoTower

#: the base models of this package
_BASE: dict[str, type[Recommender[Any]]] = {
    "popularity": Popularity,
    "ease": EASE,
    "itemknn": ItemKNN,
    "als": ALS,
    "bpr": BPR,
    "two_tower": TwoTower,
    "content": ContentBased,
    "graph_walk": GraphWalk,
    "lightgcn": LightGCN,
    "hybrid": Hybrid,
    "ranker": Ranker,
    "cold_start": ColdStart,
}

#: models built from the base models, in packages above this one, by class path: the
#: registry names them without importing them (a package below never imports back)
_COMPOSED: dict[str, str] = {
    "pipeline": "sona.pipeline.pipeline.Pipeline",
}


class _Registry(Mapping[str, type[Recommender[Any]]]):
    """Name -> Recommender class; composed models are imported on first lookup."""

    def __getitem__(self, name: str) -> type[Recommender[Any]]:
        if name in _BASE:
            return _BASE[name]
        return _import_class(_COMPOSED[name])

    def __iter__(self) -> Iterator[str]:
        return iter([*_BASE, *_COMPOSED])

    def __len__(self) -> int:
        return len(_BASE) + len(_COMPOSED)


#: model name (as written in experiment YAML) -> Recommender subclass
MODELS: Mapping[str, type[Recommender[Any]]] = _Registry()


def get_model_class(name: str) -> type[Recommender[Any]]:
    """The Recommender class registered under ``name``.

    Raises:
        ConfigError: ``name`` is not registered; the message lists the valid names.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}"
        ) from None


def build_model(name: str, params: Mapping[str, Any] | None = None, *,
                where: str = "") -> Recommender[Any]:
    """An unfitted model ``name`` configured by ``params`` (strict keys and types).

    Args:
        name: a key of :data:`MODELS`.
        params: config fields of the model; missing ones take the dataclass defaults.
        where: dotted prefix for error messages (e.g. ``"models[2].params."``).

    Raises:
        ConfigError: unknown model, unknown parameter (valid keys listed) or a wrong type.
    """
    cls = get_model_class(name)
    config: Any = from_dict(cls.config_class, dict(params or {}), where=where)
    return cls(config)
