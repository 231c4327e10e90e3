"""Personalized PageRank (random walk with restart) over a user-item-genre-KG graph (SPEC §2.5).

Nodes are users, items, genres and knowledge-graph entities; edges join a user to each item
with a positive interaction, an item to its genres, and an item to the KG entities of its
Freebase triples (actors, directors, writers, ... linked through ``ml-100k.link``; a triple
between two films, e.g. a sequel, joins the two items). Entities touching fewer than
``min_entity_items`` training items are dropped: a leaf entity only bounces the walk back.
The graph is built with networkx, then turned into a sparse row-stochastic matrix ``P``.

A walk from user ``u`` restarts at ``u`` with probability ``restart_prob`` each step, so
its visit distribution ``x`` solves ``x = (1 - r)·(x·P + m_dangling·e_u) + r·e_u``, exactly
``networkx.pagerank(G, alpha=1 - r, personalization={u: 1})``. All users are solved at once
by a batched sparse power iteration (one sparse-dense product per step for a block of
users); each user stops on its own when its L1 change drops below ``tol``, so a user's
scores do not depend on which batch it is in.

From an item the walk moves to a genre with probability ``genre_share``, to a KG
neighbour with ``kg_share`` and to one of the item's users otherwise (see
:func:`typed_transition`): with plain row normalisation an item with two viewers and
thirty KG facts would send the walk into the KG almost always, and the collaborative
signal, by far the stronger on MovieLens, would drown.

Item scores are the visit probabilities divided by ``prior ** prior_beta``, where the
prior is the average user's visit distribution (one extra walk restarting uniformly over
users). With ``beta = 0`` this is plain PPR, which ranks popular items first; the discount
generalises RP3beta's ``popularity ** beta`` (Paudel et al., TiiS 2017) to items reached
through genres and the KG, which a raw popularity count would over-reward.

A user with no edge (e.g. only zero-weight interactions) cannot walk anywhere: such users
are scored by item popularity instead, logged at fit time and reported by
:meth:`GraphWalk.uses_fallback`. Nobody silently gets an empty list.

References: Haveliwala, "Topic-sensitive PageRank" (WWW 2002); Tong, Faloutsos & Pan,
"Fast random walk with restart and its applications" (ICDM 2006).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.data.ids import IdIndex
from sona.data.interactions import Interactions
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.export import NotExportableError, ScorerExport
from sona.models.side import ItemSideData, resolve_side_data
from sona.types import IdArray, IndexArray

log = logging.getLogger(__name__)

#: walks (restart nodes) solved together: bounds memory at n_nodes x block floats
_WALK_BLOCK = 256


@dataclass(frozen=True, slots=True)
class GraphWalkConfig:
    """Random-walk-with-restart settings."""

    # probability of jumping back to the start node at each step (1 - PageRank damping)
    restart_prob: float = 0.6
    # most power-iteration steps per walk
    n_iter: int = 60
    # a walk stops when the L1 change of its visit distribution falls below this
    tol: float = 1e-6
    # edge weight of a user-item interaction: 1 (binary) or the interaction weight
    binary: bool = True
    # add item-genre edges from the catalog
    use_genres: bool = True
    # add item-entity (and item-item) edges from the knowledge graph (side data with kg/links)
    use_kg: bool = True
    # probability that a walk at an item steps to one of its genres instead of a user
    genre_share: float = 0.02
    # probability that a walk at an item steps to a KG neighbour instead of a user
    kg_share: float = 0.02
    # keep KG entities touching at least this many training items
    min_entity_items: int = 5
    # item score = visit probability / prior**beta, prior = the average user's (0 = plain PPR)
    prior_beta: float = 0.45
    # arithmetic of the power iteration: "float32" (fast) or "float64" (exact comparisons)
    dtype: Literal["float32", "float64"] = "float32"
    # dataset whose catalog/KG is loaded on fit when none was passed as side= (None: none)
    side_source: Literal["ml-100k"] | None = "ml-100k"
    # folder of fetched datasets for side_source (ml-100k is read from <data_dir>/ml-100k)
    data_dir: str = "datasets"


def personalized_pagerank(
    transition: sp.csr_matrix,
    restart: IndexArray | NDArray[np.float64],
    *,
    restart_prob: float,
    n_iter: int,
    tol: float,
    dtype: Any = np.float64,
) -> NDArray[np.float64]:
    """Visit distributions of random walks with restart.

    Args:
        transition: row-stochastic ``(n_nodes, n_nodes)`` matrix; all-zero rows are
            dangling nodes whose mass returns to the restart distribution (networkx's rule).
        restart: the restart node of each walk, shape ``(b,)``, or one restart
            distribution per walk, shape ``(b, n_nodes)`` with rows summing to 1.
        restart_prob: probability of restarting at each step, in (0, 1].
        n_iter: maximum steps.
        tol: a walk stops once the L1 change of its distribution is below this.
        dtype: arithmetic of the iteration (float32 is ~3x faster; float64 to compare).

    Returns:
        ``(b, n_nodes)`` float64, each row a probability distribution: the solution of
        ``x = (1 - r)·(x·P + m_dangling·e) + r·e``, networkx's ``pagerank`` with
        ``alpha = 1 - r`` and ``personalization = e``.
    """
    starts = np.asarray(restart)
    n = transition.shape[0]
    pt = transition.T.tocsr().astype(dtype)
    dangling = np.asarray(transition.sum(axis=1)).ravel() == 0
    out = np.zeros((len(starts), n), dtype=np.float64)
    damping = 1.0 - restart_prob
    for start in range(0, len(starts), _WALK_BLOCK):
        block = starts[start:start + _WALK_BLOCK]
        if block.ndim == 1:
            e = np.zeros((n, len(block)), dtype=dtype)
            e[block.astype(np.int64), np.arange(len(block))] = 1.0
        else:
            e = np.ascontiguousarray(block.T, dtype=dtype)
        x = e.copy()
        active = np.arange(len(block))
        for _ in range(n_iter):
            xa, ea = x[:, active], e[:, active]
            # dangling mass and the restart both go back to each walk's restart distribution
            new = damping * (pt @ xa) + ea * (damping * xa[dangling].sum(axis=0) + restart_prob)
            change = np.abs(new - xa).sum(axis=0)
            x[:, active] = new
            active = active[change >= tol]
            if not len(active):
                break
        out[start:start + len(block)] = x.T
    return out


#: node kinds in numbering order (users, items, genres, KG entities)
_KINDS = ("user", "item", "genre", "entity")


def typed_transition(adjacency: sp.csr_matrix, node_counts: NDArray[np.int64], *,
                     genre_share: float, kg_share: float) -> sp.csr_matrix:
    """Row-stochastic transition matrix in which item nodes split their steps by edge type.

    From an item, a walk moves to a genre with probability ``genre_share``, to a KG
    neighbour (entity or KG-linked item) with ``kg_share`` and to a user otherwise, each
    type's edges in proportion to their weights; a type an item lacks passes its share to
    the others. Every other node steps along its edges in proportion to their weights.
    Without genre and KG nodes this is plain row normalisation ``D⁻¹A``.

    Args:
        adjacency: symmetric weighted ``(n, n)`` adjacency in the node numbering of
            :meth:`GraphWalk.build_graph` (users, items, genres, entities).
        node_counts: number of users, items, genres and entities.

    Returns:
        ``(n, n)`` CSR whose non-empty rows sum to 1 (isolated nodes keep an empty row).
    """
    n_users, n_items, n_genres = (int(c) for c in node_counts[:3])
    coo = adjacency.tocoo()
    row, col, weight = coo.row, coo.col, coo.data.astype(np.float64)
    item_row = (row >= n_users) & (row < n_users + n_items)
    # edge group seen from an item: 0 interaction (to a user), 1 genre, 2 KG (entity or item)
    group = np.where(col < n_users, 0, np.where(
        (col >= n_users + n_items) & (col < n_users + n_items + n_genres), 1, 2))
    group = np.where(item_row, group, 0)
    n = adjacency.shape[0]
    key = row.astype(np.int64) * 3 + group
    sums = np.bincount(key, weights=weight, minlength=3 * n)
    shares = np.array([1.0 - genre_share - kg_share, genre_share, kg_share])
    value = weight / sums[key] * np.where(item_row, shares[group], 1.0)
    totals = np.bincount(row, weights=value, minlength=n)
    value = np.divide(value, totals[row], out=np.zeros_like(value), where=totals[row] > 0)
    return sp.csr_matrix((value, (row, col)), shape=(n, n))


class GraphWalk(Recommender[GraphWalkConfig]):
    """Random walk with restart from each user over the interaction + content graph.

    Args:
        config: a :class:`GraphWalkConfig`.
        side: catalog (+ KG and links) for genre/entity nodes; overrides
            ``config.side_source``. Without either, the graph is users and items only.
    """

    config_class = GraphWalkConfig

    transition_: sp.csr_matrix
    node_counts_: NDArray[np.int64]
    popularity_: NDArray[np.float64]
    prior_: NDArray[np.float64]
    fallback_: NDArray[np.bool_]

    def __init__(self, config: GraphWalkConfig | None = None, *,
                 side: ItemSideData | None = None) -> None:
        super().__init__(config)
        self.side = side

    # --- graph ---------------------------------------------------------------------------

    def _validate(self) -> None:
        c = self.config
        if not 0.0 < c.restart_prob <= 1.0:
            raise ConfigError(f"restart_prob must be in (0, 1], got {c.restart_prob}")
        if c.n_iter < 1 or c.tol <= 0:
            raise ConfigError(f"need n_iter >= 1 and tol > 0, got {c.n_iter}, {c.tol}")
        if min(c.genre_share, c.kg_share) < 0 or c.genre_share + c.kg_share > 1:
            raise ConfigError(f"genre_share and kg_share must be >= 0 with a sum <= 1, got "
                              f"{c.genre_share}, {c.kg_share}")
        if c.prior_beta < 0:
            raise ConfigError(f"prior_beta must be >= 0, got {c.prior_beta}")
        if c.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be 'float32' or 'float64', got {c.dtype!r}")

    def build_graph(self, data: Interactions) -> nx.Graph:
        """The networkx graph of ``data`` plus side data; nodes are ints with a ``kind``.

        Node numbering: users ``0..U-1`` (user index), items ``U..U+I-1`` (``U`` + item
        index), then genres, then KG entities; each node has ``kind`` and ``label``.
        """
        self._validate()
        side = resolve_side_data(self.side, self.config.side_source, self.config.data_dir,
                                 model="GraphWalk", required=False)
        n_users, n_items = data.n_users, data.n_items
        graph = nx.Graph()
        graph.add_nodes_from(((u, {"kind": "user", "label": uid})
                              for u, uid in enumerate(data.users.ids_array.tolist())))
        graph.add_nodes_from(((n_users + i, {"kind": "item", "label": iid})
                              for i, iid in enumerate(data.items.ids_array.tolist())))
        frame = data.frame
        positive = frame["weight"].to_numpy() > 0
        weights = (np.ones(int(positive.sum())) if self.config.binary
                   else frame["weight"].to_numpy(np.float64)[positive])
        users = frame["user_idx"].to_numpy()[positive]
        items = frame["item_idx"].to_numpy()[positive] + n_users
        graph.add_weighted_edges_from(zip(users.tolist(), items.tolist(), weights.tolist(),
                                          strict=True))
        next_node = n_users + n_items
        if side is not None and self.config.use_genres and self.config.genre_share > 0:
            next_node = self._add_genres(graph, side, data.items, n_users, next_node)
        if side is not None and side.has_kg and self.config.use_kg and self.config.kg_share > 0:
            next_node = self._add_kg(graph, side, data.items, n_users, next_node)
        return graph

    def _add_genres(self, graph: nx.Graph, side: ItemSideData, items: IdIndex, n_users: int,
                    next_node: int) -> int:
        genres, vocab = side.catalog.genre_matrix(items)
        genres = genres.tocoo()
        for j, name in enumerate(vocab):
            graph.add_node(next_node + j, kind="genre", label=name)
        graph.add_weighted_edges_from(
            (n_users + int(i), next_node + int(j), 1.0)
            for i, j in zip(genres.row, genres.col, strict=True))
        return next_node + len(vocab)

    def _add_kg(self, graph: nx.Graph, side: ItemSideData, items: IdIndex, n_users: int,
                next_node: int) -> int:
        assert side.kg is not None and side.links is not None
        links = side.links
        item_idx = items.numbers(links["item_id"].to_numpy(), missing="negative")
        item_of = pd.Series(item_idx[item_idx >= 0], index=links["entity_id"].to_numpy()[
            item_idx >= 0])
        item_of = item_of[~item_of.index.duplicated()]
        head = side.kg["head_id"].map(item_of).fillna(-1).to_numpy(np.int64)
        tail = side.kg["tail_id"].map(item_of).fillna(-1).to_numpy(np.int64)
        both = (head >= 0) & (tail >= 0) & (head != tail)
        w = 1.0
        graph.add_weighted_edges_from(
            (n_users + int(a), n_users + int(b), w)
            for a, b in zip(head[both], tail[both], strict=True))
        one = (head >= 0) ^ (tail >= 0)
        pairs = pd.DataFrame({
            "item": np.where(head >= 0, head, tail)[one],
            "entity": np.where(head >= 0, side.kg["tail_id"], side.kg["head_id"])[one],
        }).drop_duplicates()
        spread = pairs.groupby("entity")["item"].transform("size")
        pairs = pairs[spread >= self.config.min_entity_items]
        entities = np.sort(pairs["entity"].unique())
        node_of = {e: next_node + k for k, e in enumerate(entities.tolist())}
        graph.add_nodes_from((node, {"kind": "entity", "label": e}) for e, node in node_of.items())
        graph.add_weighted_edges_from(
            (n_users + int(i), node_of[e], w)
            for i, e in zip(pairs["item"], pairs["entity"], strict=True))
        return next_node + len(entities)

    # --- fitting -------------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Interactions) -> None:
        graph = self.build_graph(data)
        n_nodes = graph.number_of_nodes()
        adjacency = nx.to_scipy_sparse_array(graph, nodelist=range(n_nodes), weight="weight",
                                             format="csr", dtype=np.float64)
        kinds = [kind for _, kind in graph.nodes(data="kind")]
        self.node_counts_ = np.array([kinds.count(k) for k in _KINDS], dtype=np.int64)
        self.transition_ = typed_transition(adjacency, self.node_counts_,
                                            genre_share=self.config.genre_share,
                                            kg_share=self.config.kg_share)
        degree = np.asarray(adjacency.sum(axis=1)).ravel()
        self.popularity_ = np.asarray((matrix > 0).sum(axis=0), dtype=np.float64).ravel()
        self.fallback_ = degree[:data.n_users] == 0
        if self.fallback_.any():
            log.warning("%d users have no graph neighbour: scored by popularity (fallback)",
                        int(self.fallback_.sum()))
        # the average user's walk: PPR is linear in the restart distribution, so one walk
        # restarting uniformly over users gives the mean of every user's visit distribution
        self.prior_ = np.zeros(data.n_items, dtype=np.float64)
        if (~self.fallback_).any():
            uniform = np.zeros((1, n_nodes), dtype=np.float64)
            uniform[0, np.flatnonzero(~self.fallback_)] = 1.0 / float((~self.fallback_).sum())
            visits = self._walk(uniform)
            self.prior_ = visits[0, data.n_users:data.n_users + data.n_items]
        log.info("graph: %d users, %d items, %d genres, %d entities, %d edges",
                 *self.node_counts_.tolist(), graph.number_of_edges())

    def uses_fallback(self, user_ids: IdArray | list[Any]) -> NDArray[np.bool_]:
        """Whether each user is scored by the popularity fallback (no graph neighbour).

        Raises:
            NotFittedError: before ``fit``. UnknownIdError: an unknown user id.
        """
        self._check_fitted()
        return self.fallback_[self.users_.numbers(user_ids)]

    # --- scoring -------------------------------------------------------------------------

    def _walk(self, restart: IndexArray | NDArray[np.float64]) -> NDArray[np.float64]:
        return personalized_pagerank(self.transition_, restart,
                                     restart_prob=self.config.restart_prob,
                                     n_iter=self.config.n_iter, tol=self.config.tol,
                                     dtype=np.dtype(self.config.dtype))

    def _walk_item_scores(self, nodes: IndexArray) -> NDArray[np.float64]:
        visits = self._walk(nodes)
        n_users, n_items = int(self.node_counts_[0]), int(self.node_counts_[1])
        scores = visits[:, n_users:n_users + n_items]
        if self.config.prior_beta > 0:
            # items the average walk never reaches keep their (zero) score
            prior = np.where(self.prior_ > 0, self.prior_, 1.0)
            scores = scores / prior ** self.config.prior_beta
        return scores

    def _score_users(self, user_idx: IndexArray) -> NDArray[np.float64]:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        out = np.empty((len(user_idx), int(self.node_counts_[1])), dtype=np.float64)
        fallback = self.fallback_[user_idx]
        if (~fallback).any():
            out[~fallback] = self._walk_item_scores(user_idx[~fallback])
        if fallback.any():
            out[fallback] = self.popularity_ / max(float(self.popularity_.max()), 1.0)
        return out

    def _similar_items(self, item_idx: IndexArray) -> NDArray[np.float64]:
        return self._walk_item_scores(np.asarray(item_idx, dtype=np.int64)
                                      + int(self.node_counts_[0]))

    def export_scorer(self) -> ScorerExport:
        """Never: scores come from a per-user random walk, not a fixed graph of a user input.

        Raises:
            NotExportableError: always; serve it through the pipeline model.
        """
        raise NotExportableError(
            type(self), "GraphWalk scores each user by a personalised PageRank power "
            "iteration over the user-item-genre-KG graph that stops per user at "
            f"tol={self.config.tol} (a data-dependent loop, not one scorer graph); serve it "
            "through the pipeline model")

    # --- persistence ---------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        p = self.transition_
        return {"p_data": p.data, "p_indices": p.indices, "p_indptr": p.indptr,
                "node_counts": self.node_counts_, "popularity": self.popularity_,
                "prior": self.prior_, "fallback": self.fallback_}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        n = len(state["p_indptr"]) - 1
        self.transition_ = sp.csr_matrix(
            (state["p_data"], state["p_indices"], state["p_indptr"]), shape=(n, n))
        self.node_counts_ = state["node_counts"].astype(np.int64)
        self.popularity_ = state["popularity"].astype(np.float64)
        self.prior_ = state["prior"].astype(np.float64)
        self.fallback_ = state["fallback"].astype(bool)
