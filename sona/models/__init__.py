"""Recommender models: one per module, all under the contract of :mod:`sona.models.base`."""

from sona.models.als import ALS, ALSConfig
from sona.models.base import Recommender
from sona.models.bpr import BPR, BPRConfig
from sona.models.cold_start import ColdProfile, ColdStart, ColdStartConfig, ContentColdItems
from sona.models.content import ContentBased, ContentConfig
from sona.models.ease import EASE, EASEConfig
from sona.models.generators import GeneratorSpec
from sona.models.graph_walk import GraphWalk, GraphWalkConfig
from sona.models.hybrid import Hybrid, HybridConfig
from sona.models.item_knn import ItemKNN, ItemKNNConfig
from sona.models.lightgcn import LightGCN, LightGCNConfig
from sona.models.popularity import Popularity, PopularityConfig
from sona.models.ranker import Ranker, RankerConfig
from sona.models.side import ItemSideData
from sona.models.two_tower import ItemFeatures, TwoTower, TwoTowerConfig

__all__ = ["ALS", "BPR", "EASE", "ALSConfig", "BPRConfig", "EASEConfig", "ItemKNN",
           "ItemKNNConfig", "Popularity", "PopularityConfig", "Recommender"]
__all__ += ["ContentBased", "ContentConfig", "GraphWalk", "GraphWalkConfig", "ItemSideData",
            "LightGCN", "LightGCNConfig"]
__all__ += ["ItemFeatures", "TwoTower", "TwoTowerConfig"]
__all__ += ["ColdProfile", "ColdStart", "ColdStartConfig", "ContentColdItems", "GeneratorSpec",
            "Hybrid", "HybridConfig", "Ranker", "RankerConfig"]
