"""Precision, recall and F1 of entity resolution against the feeds' ground truth.

Resolution is order-free (see :mod:`sona.ingest.resolution`), so every score here is too:

- **pairwise** (the headline, the standard ER measure): pairs of records put in one entity
  vs pairs of records of one work;
- **per rule**: the links a rule contributed (accepted evidence between two records);
  ``precision = same-work links / links`` and ``recall`` = the share of true pairs that the
  rule's links *alone* connect (transitively), so a rule is credited with what it could do on
  its own; ``weak_id`` is an IMDb/TMDb id shared by records whose titles disagree;
- **per noise class** (generated feeds know each record's classes): pairwise scores over the
  pairs with at least one record of the class;
- **look-alikes**: for every hard-negative twin work, whether any of its records shares an
  entity with a record of the work it imitates (a false merge), and how many false pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sona.ingest.linking import Link
from sona.ingest.resolution import MATCH_RULES, Resolution


@dataclass(frozen=True, slots=True)
class RuleScore:
    """Counts and scores of one row: a rule, a noise class, or ``"pairwise"``."""

    rule: str  # row name
    links: int  # predicted pairs (pairwise, classes) or links the rule made (rules)
    tp: int
    fp: int
    positives: int  # true pairs the row is judged against
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True, slots=True)
class LookalikeScore:
    """False merges between hard-negative twins and the works they imitate."""

    kind: str  # remake, sequel, longer_title, subtitled_sequel or "all"
    twins: int  # twin works with records on both sides
    merged: int  # of those, twins sharing an entity with their original
    false_pairs: int  # record pairs across twin and original put in one entity


@dataclass(frozen=True, slots=True)
class ResolutionReport:
    """Per-rule, per-class, look-alike and pairwise scores of one resolution."""

    rules: list[RuleScore]
    pairwise: RuleScore
    n_records: int
    n_entities: int
    n_works: int
    decided_by: dict[str, int]  # rule -> records it attached (incl. "new")
    classes: list[RuleScore] = field(default_factory=list)
    lookalikes: list[LookalikeScore] = field(default_factory=list)

    def rows(self) -> list[dict[str, float | int | str]]:
        """One dict per table row: rules, then pairwise."""
        return [asdict(r) for r in (*self.rules, self.pairwise)]


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _score(rule: str, links: int, tp: int, positives: int) -> RuleScore:
    precision = tp / links if links else float("nan")
    recall = tp / positives if positives else float("nan")
    f1 = _f1(precision, recall) if links and positives else float("nan")
    return RuleScore(rule, links, tp, links - tp, positives, precision, recall, f1)


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def record_links(links: Iterable[Link]) -> list[tuple[str, str, str]]:
    """``(record key, record key, rule)`` of the links between two batch records."""
    return [(x.a[2:], x.b[2:], x.rule) for x in links
            if x.a.startswith("r:") and x.b.startswith("r:")]


def evaluate_resolution(record_ids: Sequence[str], resolutions: Sequence[Resolution],
                        truth: Mapping[str, int], *, rules: Sequence[str] = MATCH_RULES,
                        links: Iterable[tuple[str, str, str]] = (),
                        noise: Mapping[str, Sequence[str]] | None = None,
                        lookalikes: Mapping[int, tuple[int, str]] | None = None
                        ) -> ResolutionReport:
    """Score ``resolutions`` (aligned with ``record_ids``; order does not matter).

    Args:
        record_ids: the records' ids (keys of ``truth``).
        resolutions: one per record.
        truth: record id -> work id.
        rules: the match rules the resolver had enabled (one row each, even when idle).
        links: accepted ``(record id, record id, rule)`` evidence (:func:`record_links`).
        noise: record id -> noise classes, for the per-class rows.
        lookalikes: twin work id -> (imitated work id, kind), for the look-alike rows.

    Raises:
        ValueError: misaligned inputs or a record without ground truth.
    """
    if len(record_ids) != len(resolutions):
        raise ValueError(f"{len(record_ids)} record ids for {len(resolutions)} resolutions")
    missing = [r for r in record_ids if r not in truth]
    if missing:
        raise ValueError(f"{len(missing)} record(s) have no ground truth, e.g. {missing[:3]}")
    entity = {rid: res.entity_id for rid, res in zip(record_ids, resolutions, strict=True)}
    works = Counter(truth[r] for r in record_ids)
    n_true = _pairs(works.values())
    by_rule: dict[str, list[tuple[str, str]]] = {r: [] for r in rules}
    for a, b, rule in links:
        if a in entity and b in entity:
            by_rule.setdefault(rule, []).append((a, b))
    rows = [_rule_score(rule, pairs, record_ids, truth, n_true)
            for rule, pairs in by_rule.items()]
    cells = Counter((entity[r], truth[r]) for r in record_ids)
    sizes = Counter(entity[r] for r in record_ids)
    pairwise = _score("pairwise", _pairs(sizes.values()), _pairs(cells.values()), n_true)
    decided = Counter(res.rule for res in resolutions)
    classes = _class_scores(record_ids, entity, truth, noise) if noise is not None else []
    twins = _lookalike_scores(record_ids, entity, truth, lookalikes) if lookalikes else []
    return ResolutionReport(rows, pairwise, len(record_ids), len(sizes), len(works),
                            dict(decided), classes, twins)


def _rule_score(rule: str, pairs: list[tuple[str, str]], record_ids: Sequence[str],
                truth: Mapping[str, int], n_true: int) -> RuleScore:
    parent = {r: r for r in record_ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    cells = Counter((find(r), truth[r]) for r in record_ids)
    connected = _pairs(cells.values())
    tp = sum(1 for a, b in pairs if truth[a] == truth[b])
    precision = tp / len(pairs) if pairs else float("nan")
    recall = connected / n_true if n_true else float("nan")
    f1 = _f1(precision, recall) if pairs and n_true else float("nan")
    return RuleScore(rule, len(pairs), tp, len(pairs) - tp, n_true, precision, recall, f1)


def _class_scores(record_ids: Sequence[str], entity: Mapping[str, str],
                  truth: Mapping[str, int],
                  noise: Mapping[str, Sequence[str]]) -> list[RuleScore]:
    """Pairwise scores over the pairs with at least one record of each class."""
    names = sorted({c for r in record_ids for c in noise.get(r, ())})
    out = []
    for name in names:
        in_class = {r for r in record_ids if name in noise.get(r, ())}

        def touching(groups: Counter[Any], inside: Counter[Any]) -> int:
            return sum(n * (n - 1) // 2 - (n - inside[g]) * (n - inside[g] - 1) // 2
                       for g, n in groups.items())

        works = Counter(truth[r] for r in record_ids)
        works_in = Counter(truth[r] for r in in_class)
        ents = Counter(entity[r] for r in record_ids)
        ents_in = Counter(entity[r] for r in in_class)
        cells = Counter((entity[r], truth[r]) for r in record_ids)
        cells_in = Counter((entity[r], truth[r]) for r in in_class)
        out.append(_score(name, touching(ents, ents_in), touching(cells, cells_in),
                          touching(works, works_in)))
    return out


def _lookalike_scores(record_ids: Sequence[str], entity: Mapping[str, str],
                      truth: Mapping[str, int],
                      lookalikes: Mapping[int, tuple[int, str]]) -> list[LookalikeScore]:
    ents_of: dict[int, Counter[str]] = {}
    for r in record_ids:
        ents_of.setdefault(truth[r], Counter())[entity[r]] += 1
    totals: dict[str, list[int]] = {}
    for twin, (original, kind) in sorted(lookalikes.items()):
        a, b = ents_of.get(twin), ents_of.get(original)
        if not a or not b:
            continue
        false_pairs = sum(n * b[e] for e, n in a.items())
        for key in (kind, "all"):
            row = totals.setdefault(key, [0, 0, 0])
            row[0] += 1
            row[1] += int(false_pairs > 0)
            row[2] += false_pairs
    return [LookalikeScore(k, *totals[k]) for k in sorted(totals, key=lambda k: (k == "all", k))]


__all__ = ["LookalikeScore", "ResolutionReport", "RuleScore", "evaluate_resolution",
           "record_links"]
