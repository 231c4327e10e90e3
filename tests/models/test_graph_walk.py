import logging

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError
from sona.models.graph_walk import (
    GraphWalk,
    GraphWalkConfig,
    personalized_pagerank,
    typed_transition,
)
from sona.models.registry import build_model
from sona.models.side import ItemSideData
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import ITEM_OFFSET, random_interactions

EXACT = {"dtype": "float64", "tol": 1e-13, "n_iter": 2000}


def _catalog(n: int = 200) -> Catalog:
    genres = ["Action", "Comedy", "Drama", "Horror", "Western"]
    return Catalog.from_frame(pd.DataFrame({
        "item_id": [ITEM_OFFSET + i for i in range(n)],
        "title": [f"film {i}" for i in range(n)],
        "genres": [(genres[i % 5], genres[(i * 7) % 5]) for i in range(n)],
    }))


class TestGraphWalk(RecommenderContract):
    @staticmethod
    def make_model():
        return GraphWalk(GraphWalkConfig(side_source=None))


class TestGraphWalkWithGenres(RecommenderContract):
    @staticmethod
    def make_model():
        return GraphWalk(GraphWalkConfig(side_source=None, genre_share=0.1, dtype="float64"),
                         side=ItemSideData(_catalog()))


# --- known answers ------------------------------------------------------------------------

def _hand_graph() -> nx.Graph:
    graph = nx.Graph()
    graph.add_weighted_edges_from([(0, 1, 1.0), (0, 2, 2.0), (1, 2, 0.5), (2, 3, 1.0),
                                   (3, 4, 3.0), (4, 5, 1.0), (1, 5, 0.25)])
    graph.add_node(6)  # isolated: a dangling node
    return graph


@pytest.mark.parametrize("restart_prob", [0.15, 0.5])
def test_ppr_equals_networkx_pagerank(restart_prob: float):
    graph = _hand_graph()
    adjacency = nx.to_scipy_sparse_array(graph, nodelist=range(7), format="csr")
    degree = adjacency.sum(axis=1)
    transition = sp.csr_matrix(sp.diags(np.divide(1.0, degree, out=np.zeros(7),
                                                  where=degree > 0)) @ adjacency)
    starts = np.array([0, 3, 5, 6])
    ours = personalized_pagerank(transition, starts, restart_prob=restart_prob, n_iter=5000,
                                 tol=1e-14)
    for row, node in enumerate(starts):
        ref = nx.pagerank(graph, alpha=1 - restart_prob, personalization={int(node): 1.0},
                          tol=1e-14, max_iter=5000)
        np.testing.assert_allclose(ours[row], [ref[n] for n in range(7)], atol=1e-6)
    assert ours[3, 6] == pytest.approx(1.0)  # a walk from an isolated node stays there


def test_ppr_with_a_restart_distribution_is_linear():
    graph = _hand_graph()
    adjacency = nx.to_scipy_sparse_array(graph, nodelist=range(7), format="csr")
    transition = typed_transition(adjacency, np.array([7, 0, 0, 0]), genre_share=0.0,
                                  kg_share=0.0)
    single = personalized_pagerank(transition, np.arange(6), restart_prob=0.3, n_iter=3000,
                                   tol=1e-14)
    mix = np.zeros((1, 7))
    mix[0, :6] = 1 / 6
    mixed = personalized_pagerank(transition, mix, restart_prob=0.3, n_iter=3000, tol=1e-14)
    np.testing.assert_allclose(mixed[0], single.mean(axis=0), atol=1e-10)


def _tiny_log() -> Interactions:
    rows = [(1, 10), (1, 11), (2, 11), (2, 12), (3, 12), (3, 13), (3, 10), (4, 13)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["rating"] = 4.0
    return Interactions.from_frame(frame)


def test_model_scores_are_networkx_pagerank_of_its_graph():
    data = _tiny_log()
    model = GraphWalk(GraphWalkConfig(side_source=None, restart_prob=0.25, prior_beta=0.0,
                                      **EXACT)).fit(data)
    graph = model.build_graph(data)
    assert graph.number_of_nodes() == 8 and graph.number_of_edges() == 8
    n_users = data.n_users
    scores = model._score_users(np.arange(n_users))
    for u in range(n_users):
        ref = nx.pagerank(graph, alpha=0.75, personalization={u: 1.0}, tol=1e-14,
                          max_iter=5000)
        expected = [ref[n_users + i] for i in range(data.n_items)]
        np.testing.assert_allclose(scores[u], expected, atol=1e-6)


def test_prior_is_the_average_user_walk_and_divides_scores():
    data = random_interactions(n_users=20, n_items=30, n_interactions=150, seed=5)
    plain = GraphWalk(GraphWalkConfig(side_source=None, prior_beta=0.0, **EXACT)).fit(data)
    visits = plain._score_users(np.arange(data.n_users))
    np.testing.assert_allclose(plain.prior_, visits.mean(axis=0), atol=1e-9)
    beta = GraphWalk(GraphWalkConfig(side_source=None, prior_beta=0.5, **EXACT)).fit(data)
    np.testing.assert_allclose(beta._score_users(np.arange(5)),
                               visits[:5] / np.sqrt(plain.prior_), rtol=1e-6)


def _films() -> tuple[Interactions, ItemSideData]:
    rows = [(1, 10), (1, 11), (2, 11), (2, 12), (3, 13), (3, 14), (4, 14)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["rating"] = 5.0
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": [10, 11, 12, 13, 14, 15],
        "title": ["a", "b", "c", "d", "e", "not in training"],
        "genres": [("Drama",), ("Drama", "War"), ("Comedy",), ("Comedy",), (), ("War",)],
    }))
    links = pd.DataFrame({"item_id": [10, 11, 12, 13, 14, 15],
                          "entity_id": ["m.a", "m.b", "m.c", "m.d", "m.e", "m.f"]})
    kg = pd.DataFrame({
        "head_id": ["m.a", "m.b", "m.c", "m.d", "m.a", "m.d", "m.x"],
        "relation_id": ["film.film.directed_by", "film.film.directed_by", "film.film.actor",
                        "film.film.sequel", "film.film.actor", "film.film.directed_by",
                        "people.person.spouse"],
        "tail_id": ["m.dir1", "m.dir1", "m.act1", "m.e", "m.act2", "m.dir1", "m.y"],
    })
    return Interactions.from_frame(frame), ItemSideData(catalog, kg, links)


def test_graph_has_genre_and_kg_nodes():
    data, side = _films()
    model = GraphWalk(GraphWalkConfig(side_source=None, genre_share=0.1, kg_share=0.2,
                                      min_entity_items=2), side=side)
    graph = model.build_graph(data)
    kinds = nx.get_node_attributes(graph, "kind")
    labels = nx.get_node_attributes(graph, "label")
    genres = sorted(labels[n] for n, k in kinds.items() if k == "genre")
    entities = sorted(labels[n] for n, k in kinds.items() if k == "entity")
    assert genres == ["Comedy", "Drama", "War"]
    # m.dir1 directs three training films; m.act1/m.act2 touch one film each (dropped),
    # the sequel triple m.d -> m.e joins two items, m.x - m.y touches no item
    assert entities == ["m.dir1"]
    item = {labels[n]: n for n, k in kinds.items() if k == "item"}
    assert graph.has_edge(item[13], item[14])
    dir1 = next(n for n, lab in labels.items() if lab == "m.dir1")
    assert sorted(labels[n] for n in graph.neighbors(dir1)) == [10, 11, 13]


def test_item_steps_split_by_edge_type_and_match_networkx():
    data, side = _films()
    model = GraphWalk(GraphWalkConfig(side_source=None, genre_share=0.1, kg_share=0.2,
                                      min_entity_items=2, restart_prob=0.3, prior_beta=0.0,
                                      **EXACT),
                      side=side).fit(data)
    p = model.transition_.toarray()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    n_users, n_items, n_genres = model.node_counts_[:3]
    item_11 = n_users + data.items.number(11)  # users 1, 2; Drama, War; KG: m.dir1
    genre_cols = slice(n_users + n_items, n_users + n_items + n_genres)
    assert p[item_11, :n_users].sum() == pytest.approx(0.7)
    assert p[item_11, genre_cols].sum() == pytest.approx(0.1)
    assert p[item_11, n_users + n_items + n_genres:].sum() == pytest.approx(0.2)
    item_12 = n_users + data.items.number(12)  # no KG neighbour: its share goes to the rest
    assert p[item_12, :n_users].sum() == pytest.approx(0.7 / 0.8)
    # the typed walk is PageRank on the directed graph of those transition probabilities
    digraph = nx.from_numpy_array(p, create_using=nx.DiGraph)
    scores = model._score_users(np.arange(data.n_users))
    for u in range(data.n_users):
        ref = nx.pagerank(digraph, alpha=0.7, personalization={u: 1.0}, tol=1e-14,
                          max_iter=5000)
        np.testing.assert_allclose(scores[u], [ref[n_users + i] for i in range(n_items)],
                                   atol=1e-6)


def test_user_without_neighbours_gets_the_flagged_popularity_fallback(caplog):
    frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 4], "item_id": [10, 11, 11, 12, 11, 10],
                          "weight": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]})
    data = Interactions.from_frame(frame)
    with caplog.at_level(logging.WARNING):
        model = GraphWalk(GraphWalkConfig(side_source=None)).fit(data)
    assert "1 users have no graph neighbour" in caplog.text
    assert model.uses_fallback([1, 2, 3, 4]).tolist() == [False, False, False, True]
    recs = model.recommend([4], k=3, exclude_seen=False)
    # popularity: item 11 (3 users) > item 10 (1 positive) = item 12 (1), never empty
    assert recs.valid.all()
    assert recs.ids[0].tolist() == [11, 10, 12]
    assert recs.scores[0, 0] == pytest.approx(1.0)


def test_config_is_checked_on_fit():
    data = _tiny_log()
    for bad in ({"restart_prob": 0.0}, {"genre_share": 0.7, "kg_share": 0.5},
                {"prior_beta": -1.0}, {"n_iter": 0}):
        with pytest.raises(ConfigError):
            GraphWalk(GraphWalkConfig(side_source=None, **bad)).fit(data)


def test_registered_for_experiment_yaml():
    model = build_model("graph_walk", {"restart_prob": 0.5, "side_source": None})
    assert isinstance(model, GraphWalk) and model.config.restart_prob == 0.5


@pytest.mark.realdata
def test_movielens_graph_from_kg_and_links(ml100k):
    side = ItemSideData(ml100k.catalog, ml100k.kg, ml100k.links)
    model = GraphWalk(GraphWalkConfig(side_source=None), side=side).fit(ml100k.interactions)
    users, items, genres, entities = model.node_counts_.tolist()
    assert (users, items, genres) == (943, 1682, 19)
    # Freebase entities (actors, directors, languages, ...) shared by >= 5 films
    assert 500 < entities < 5000
    assert not model.uses_fallback(ml100k.interactions.users.ids_array).any()
    np.testing.assert_allclose(model.transition_.sum(axis=1), 1.0)
    recs = model.recommend(ml100k.interactions.users.ids_array[:50], k=10)
    assert recs.valid.all()


def test_unknown_side_source_is_a_config_error():
    from sona.models.side import load_side_data

    with pytest.raises(ConfigError, match="unknown side_source 'ml-1m'"):
        load_side_data("ml-1m")
