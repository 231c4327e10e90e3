"""Record-to-record evidence and the order-free clustering that entity resolution runs on.

A *node* is either a record of the batch being resolved or an entity already known to the
resolver (all its titles, aliases, heads, years, runtimes and ids, never just its first
record's). :func:`candidate_links` finds evidence between nodes through blocking indices;
:func:`cluster` unions nodes along the evidence, strongest first, refusing a union that
would put release years more than ``max_year_span`` apart or two different EIDRs into one
entity. Edges are sorted by (rule, -score, runtime gap, node names), never by arrival, and a
union-find's components do not depend on the order its unions are tried in beyond that
sort, so the result is the same for any order of the input records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from rapidfuzz import process

from sona.ingest.titles import numbers_of

# rule ranks: lower is stronger (the SPEC order, with the dropped-subtitle rule after rule 3)
RANK: dict[str, int] = {"platform_id": 0, "eidr": 1, "external_id": 2, "fuzzy_title": 3,
                        "subtitle": 4, "embedding": 5, "weak_id": 6}


@dataclass(slots=True)
class Node:
    """What the rules compare about one record or one known entity."""

    ref: str  # "r:<platform>:<id>" for a batch record, "e:<entity id>" for a known entity
    keys: set[str] = field(default_factory=set)  # main keys and alias keys of every title
    heads: set[str] = field(default_factory=set)  # heads of droppable subtitles
    years: set[int] = field(default_factory=set)
    runtimes: set[int] = field(default_factory=set)
    ids: set[tuple[str, str]] = field(default_factory=set)  # (id type, value) incl. platform


@dataclass(frozen=True, slots=True)
class Link:
    """Evidence that two nodes are one work; ``rule`` names the kind of evidence."""

    a: str
    b: str
    rule: str  # a key of RANK
    score: float  # title similarity, cosine or 1.0 for ids
    gap: int = 0  # runtime difference in minutes (sort tie-break; 0 when unknown)

    def order(self) -> tuple[int, float, int, str, str]:
        """Sort key: strongest rule, best score, closest runtime, then names."""
        return (RANK[self.rule], -self.score, self.gap, min(self.a, self.b), max(self.a, self.b))


def years_close(a: Iterable[int], b: Iterable[int], tol: int) -> bool | None:
    """Any two known years within ``tol``; ``None`` when either side has no year."""
    a, b = list(a), list(b)
    if not a or not b:
        return None
    return any(abs(x - y) <= tol for x in a for y in b)


def runtime_gap(a: Node, b: Node) -> int | None:
    """Smallest runtime difference in minutes, ``None`` when either is unknown."""
    if not a.runtimes or not b.runtimes:
        return None
    return min(abs(x - y) for x in a.runtimes for y in b.runtimes)


def title_similarity(a: Node, b: Node, scorer: Callable[..., float]) -> float:
    """Best similarity over all key pairs; a head equal to a key (dropped subtitle) is 1.0."""
    if a.keys & b.keys or a.heads & b.keys or b.heads & a.keys:
        return 1.0
    best = 0.0
    for x in a.keys:
        for y in b.keys:
            if numbers_of(x) == numbers_of(y):
                best = max(best, float(scorer(x, y)))
    return best


class Blocks:
    """Blocking indices over nodes: ids, exact keys, heads and keys per year."""

    def __init__(self) -> None:
        self.by_id: dict[tuple[str, str], set[str]] = {}
        self.by_key: dict[str, set[str]] = {}
        self.by_head: dict[str, set[str]] = {}
        self.year_keys: dict[int, dict[str, set[str]]] = {}

    def add(self, node: Node) -> None:
        """Index ``node`` under all its ids, keys, heads and years."""
        for ident in node.ids:
            self.by_id.setdefault(ident, set()).add(node.ref)
        for key in node.keys:
            self.by_key.setdefault(key, set()).add(node.ref)
            for year in node.years:
                self.year_keys.setdefault(year, {}).setdefault(key, set()).add(node.ref)
        for head in node.heads:
            self.by_head.setdefault(head, set()).add(node.ref)

    def remove(self, node: Node) -> None:
        """Drop ``node`` from every index."""
        for ident in node.ids:
            self.by_id.get(ident, set()).discard(node.ref)
        for key in node.keys:
            self.by_key.get(key, set()).discard(node.ref)
            for year in node.years:
                self.year_keys.get(year, {}).get(key, set()).discard(node.ref)
        for head in node.heads:
            self.by_head.get(head, set()).discard(node.ref)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """The thresholds :func:`candidate_links` applies (copied from the resolver config)."""

    fuzzy_threshold: float
    year_tolerance: int
    id_title_guard: float
    runtime_tolerance: int
    rules: tuple[str, ...]


def candidate_links(batch: list[Node], nodes: Mapping[str, Node], blocks: list[Blocks],
                    cfg: LinkConfig, scorer: Callable[..., float]) -> list[Link]:
    """Evidence between each batch node and any node (batch or known) the indices reach.

    Returns links for the rules platform_id, eidr, external_id, weak_id (an IMDb/TMDb id
    shared by records whose titles disagree), fuzzy_title and subtitle; each unordered pair
    at most once per rule.
    """
    seen: set[tuple[str, str, str]] = set()
    out: list[Link] = []

    def emit(a: Node, b: Node, rule: str, score: float) -> None:
        if a.ref == b.ref:
            return
        pair = (rule, *sorted((a.ref, b.ref)))
        if pair in seen:
            return
        seen.add(pair)  # type: ignore[arg-type]
        out.append(Link(a.ref, b.ref, rule, score, runtime_gap(a, b) or 0))

    def lookup(index: str, value: object) -> set[str]:
        found: set[str] = set()
        for blk in blocks:
            found |= getattr(blk, index).get(value, set())
        return found

    tol = cfg.year_tolerance
    for node in batch:
        for ident in node.ids:
            id_type = ident[0]
            rule = ("platform_id" if id_type.startswith("platform:") else
                    "eidr" if id_type == "eidr_id" else "external_id")
            if rule not in cfg.rules and rule != "platform_id":
                continue
            for ref in sorted(lookup("by_id", ident)):
                other = nodes[ref]
                if rule != "external_id":
                    emit(node, other, rule, 1.0)
                    continue
                sim = title_similarity(node, other, scorer)
                emit(node, other, "external_id" if sim >= cfg.id_title_guard else "weak_id", sim)
        if "fuzzy_title" in cfg.rules:
            for key in node.keys:  # exact keys: any year within tolerance, or runtime if none
                for ref in sorted(lookup("by_key", key)):
                    other = nodes[ref]
                    close = years_close(node.years, other.years, tol)
                    gap = runtime_gap(node, other)
                    if close or (close is None and (gap is None or gap <= cfg.runtime_tolerance)):
                        emit(node, other, "fuzzy_title", 1.0)
        if "subtitle" in cfg.rules:
            _subtitle_links(node, nodes, lookup, cfg, scorer, emit)
    if "fuzzy_title" in cfg.rules:
        _fuzzy_links(batch, nodes, blocks, cfg, scorer, emit)
    return out


def _subtitle_links(node: Node, nodes: Mapping[str, Node],
                    lookup: Callable[[str, object], set[str]], cfg: LinkConfig,
                    scorer: Callable[..., float],
                    emit: Callable[[Node, Node, str, float], None]) -> None:
    """``node``'s key is another node's head (or the reverse): a dropped subtitle.

    Candidates come in tiers: the same year, else a year +-1 (or unknown) with runtimes
    within ``runtime_tolerance``. Within the best tier, a short title that is the head of
    two different long titles ("Wallace and Gromit" of two shorts) is ambiguous and links to
    neither.
    """
    def tier(a: Node, b: Node) -> int | None:
        if years_close(a.years, b.years, 0):
            return 0
        gap = runtime_gap(a, b)
        if years_close(a.years, b.years, 1) is not False and gap is not None and \
                gap <= cfg.runtime_tolerance:
            return 1
        return None

    def best(short: Node, key: str) -> list[Node]:
        tiers: dict[int, list[Node]] = {}
        for ref in sorted(lookup("by_head", key)):
            other = nodes[ref]
            level = tier(short, other) if ref != short.ref and key not in other.keys else None
            if level is not None:
                tiers.setdefault(level, []).append(other)
        if not tiers:
            return []
        longs = tiers[min(tiers)]
        return [] if _ambiguous(longs, key, scorer, cfg.fuzzy_threshold) else longs

    for key in node.keys:  # node is the short form
        for other in best(node, key):
            emit(node, other, "subtitle", 1.0)
    for head in node.heads:  # node is the long form
        for ref in sorted(lookup("by_key", head)):
            short = nodes[ref]
            if ref != node.ref and node in best(short, head):
                emit(short, node, "subtitle", 1.0)


def _ambiguous(longs: list[Node], head: str, scorer: Callable[..., float],
               threshold: float) -> bool:
    """Whether the long titles with this head name more than one distinct title."""
    groups: list[str] = []
    for n in longs:
        full = sorted(k for k in n.keys if k.startswith(head + " ") or k == head)
        for k in full or sorted(n.keys)[:1]:
            if not any(scorer(k, g) >= threshold for g in groups):
                groups.append(k)
    return len(groups) > 1


def _fuzzy_links(batch: list[Node], nodes: Mapping[str, Node], blocks: list[Blocks],
                 cfg: LinkConfig, scorer: Callable[..., float],
                 emit: Callable[[Node, Node, str, float], None]) -> None:
    """Rule 3 beyond exact keys: edit similarity >= threshold, years within tolerance.

    Keys are compared once per distinct (key, year) with ``rapidfuzz.process.cdist``; a pair
    whose digit tokens differ ("die hard" vs "die hard 2") never links (sequel guard).
    """
    tol = cfg.year_tolerance
    queries: dict[int, dict[str, list[Node]]] = {}
    for node in batch:
        for year in node.years:
            for key in node.keys:
                queries.setdefault(year, {}).setdefault(key, []).append(node)
    for year in sorted(queries):
        choices: dict[str, set[str]] = {}
        for y in range(year - tol, year + tol + 1):
            for blk in blocks:
                for key, refs in blk.year_keys.get(y, {}).items():
                    choices.setdefault(key, set()).update(refs)
        qkeys = sorted(queries[year])
        ckeys = sorted(choices)
        if not qkeys or not ckeys:
            continue
        scores = process.cdist(qkeys, ckeys, scorer=scorer, score_cutoff=cfg.fuzzy_threshold,
                               workers=1)
        for i, j in zip(*scores.nonzero(), strict=True):
            qk, ck = qkeys[int(i)], ckeys[int(j)]
            if qk == ck or numbers_of(qk) != numbers_of(ck) or _extra_words(qk, ck):
                continue  # exact keys were linked already; digits differ: a sequel
            for node in queries[year][qk]:
                for ref in sorted(choices[ck]):
                    emit(node, nodes[ref], "fuzzy_title", float(scores[i, j]))


def _extra_words(a: str, b: str) -> bool:
    """Whether one key is the other plus whole words ("fargo" / "fargo nights")."""
    x, y = a.split(), b.split()
    short, long = (x, y) if len(x) < len(y) else (y, x)
    n = len(short)
    return n < len(long) and (long[:n] == short or long[-n:] == short)


class Clusters:
    """Union-find over node refs with the year-span and single-EIDR constraints."""

    def __init__(self, nodes: Mapping[str, Node], max_year_span: int) -> None:
        self.parent = {ref: ref for ref in nodes}
        self.span = {ref: (min(n.years), max(n.years)) if n.years else None
                     for ref, n in nodes.items()}
        self.eidr = {ref: {v for t, v in n.ids if t == "eidr_id"} for ref, n in nodes.items()}
        self.size = dict.fromkeys(nodes, 1)
        self.max_year_span = max_year_span

    def _one_eidr(self, ra: str, rb: str) -> bool:
        return len(self.eidr[ra] | self.eidr[rb]) <= 1

    def find(self, ref: str) -> str:
        """Root of ``ref``'s component (path halving)."""
        parent = self.parent
        while parent[ref] != ref:
            parent[ref] = parent[parent[ref]]
            ref = parent[ref]
        return ref

    def allowed(self, a: str, b: str) -> bool:
        """Whether joining the components of ``a`` and ``b`` keeps both constraints."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        sa, sb = self.span[ra], self.span[rb]
        if sa and sb:  # a span an EIDR already forced may hold more records, not grow
            limit = max(self.max_year_span, sa[1] - sa[0], sb[1] - sb[0])
            if max(sa[1], sb[1]) - min(sa[0], sb[0]) > limit:
                return False
        return len(self.eidr[ra] | self.eidr[rb]) <= 1

    def union(self, a: str, b: str, *, same_work: bool = False) -> bool:
        """Join the components (smaller name becomes the root); False when refused.

        ``same_work`` evidence (an EIDR or the platform's own id) overrides the year span.
        """
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not self.allowed(ra, rb) and not (same_work and self._one_eidr(ra, rb)):
            return False
        root, child = (ra, rb) if ra < rb else (rb, ra)
        self.parent[child] = root
        sa, sb = self.span[ra], self.span[rb]
        self.span[root] = (sa if not sb else sb if not sa else
                           (min(sa[0], sb[0]), max(sa[1], sb[1])))
        self.eidr[root] = self.eidr[ra] | self.eidr[rb]
        self.size[root] = self.size[ra] + self.size[rb]
        return True


def cluster(nodes: Mapping[str, Node], links: list[Link], *, max_year_span: int,
            year_tolerance: int, runtime_tolerance: int) -> tuple[Clusters, list[Link]]:
    """Union along ``links`` strongest first; returns the clusters and the accepted links.

    Weak id links (an id shared by records whose titles disagree: an alias the title rules
    cannot see, or a copy-paste error in a feed) go last and only join two components when
    their years and runtimes agree and either side is a single node or two different links
    support the join; a copy-pasted id is one record's word against its own component's.
    """
    clusters = Clusters(nodes, max_year_span)
    accepted: list[Link] = []
    strong = sorted((x for x in links if x.rule != "weak_id"), key=Link.order)
    for link in strong:
        if clusters.union(link.a, link.b, same_work=link.rule in ("platform_id", "eidr")):
            accepted.append(link)
    support: dict[tuple[str, str], list[Link]] = {}
    for link in sorted((x for x in links if x.rule == "weak_id"), key=Link.order):
        ra, rb = clusters.find(link.a), clusters.find(link.b)
        if ra != rb:
            support.setdefault((min(ra, rb), max(ra, rb)), []).append(link)
    for (ra, rb), group in sorted(support.items()):
        link = group[0]
        a, b = nodes[link.a], nodes[link.b]
        gap = runtime_gap(a, b)
        agree = years_close(a.years, b.years, year_tolerance) is not False and (
            gap is None or gap <= runtime_tolerance)
        single = min(clusters.size[clusters.find(ra)], clusters.size[clusters.find(rb)]) == 1
        if agree and (single or len({x.a for x in group} | {x.b for x in group}) > 2) \
                and clusters.union(ra, rb):
            accepted.extend(group)
    return clusters, accepted


__all__ = ["RANK", "Blocks", "Clusters", "Link", "LinkConfig", "Node", "candidate_links",
           "cluster", "runtime_gap", "title_similarity", "years_close"]
