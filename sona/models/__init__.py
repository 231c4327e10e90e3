"""Recommender models: one per module, all under the contract of :mod:`sona.models.base`."""

from sona.models.base import Recommender
from sona.models.ease import EASE, EASEConfig
from sona.models.popularity import Popularity, PopularityConfig

__all__ = ["EASE", "EASEConfig", "Popularity", "PopularityConfig", "Recommender"]
