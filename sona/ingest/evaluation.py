"""Precision, recall and F1 of entity resolution against the feeds' ground truth.

Records are resolved in feed order, so each decision is judged at the moment it is made:

- a record is a **positive** when an earlier record of the same work exists (it should link);
- a **link** (any rule but ``new``) is a true positive when the entity's founding record has
  the same work as the record, else a false positive (and, for a positive, also a miss);
- a ``new`` decision for a positive is a false negative.

Per rule: ``precision = TP / links`` and ``recall = TP / positives that reached the rule``
(not decided by an earlier rule), so a later rule is credited only with what the earlier ones
left. The overall row uses all positives. The pairwise row scores the final clustering:
pairs of records in one entity vs pairs of records of one work (the standard ER measure).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from sona.ingest.resolution import MATCH_RULES, RULES, Resolution


@dataclass(frozen=True, slots=True)
class RuleScore:
    """Decision counts and scores of one rule (or of all rules: ``rule="overall"``)."""

    rule: str
    links: int  # records the rule linked to an existing entity
    tp: int
    fp: int
    positives: int  # positives that reached this rule
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True, slots=True)
class ResolutionReport:
    """Per-rule and overall scores plus the pairwise clustering score."""

    rules: list[RuleScore]
    overall: RuleScore
    pairwise: RuleScore
    n_records: int
    n_entities: int
    n_works: int
    decided_by: dict[str, int]  # rule -> number of records it decided (incl. "new")

    def rows(self) -> list[dict[str, float | int | str]]:
        """One dict per table row: rules, then overall and pairwise."""
        return [asdict(r) for r in (*self.rules, self.overall, self.pairwise)]


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _score(rule: str, links: int, tp: int, positives: int) -> RuleScore:
    precision = tp / links if links else float("nan")
    recall = tp / positives if positives else float("nan")
    f1 = _f1(precision, recall) if links and positives else float("nan")
    return RuleScore(rule, links, tp, links - tp, positives, precision, recall, f1)


def evaluate_resolution(record_ids: Sequence[str], resolutions: Sequence[Resolution],
                        truth: Mapping[str, int], *,
                        rules: Sequence[str] = MATCH_RULES) -> ResolutionReport:
    """Score ``resolutions`` (aligned with ``record_ids``, in resolution order).

    ``rules`` are the match rules the resolver had enabled (one row each); ``platform_id``
    gets a row when it linked anything.

    Raises:
        ValueError: misaligned inputs or a record without ground truth.
    """
    if len(record_ids) != len(resolutions):
        raise ValueError(f"{len(record_ids)} record ids for {len(resolutions)} resolutions")
    missing = [r for r in record_ids if r not in truth]
    if missing:
        raise ValueError(f"{len(missing)} record(s) have no ground truth, e.g. {missing[:3]}")
    founder: dict[str, int] = {}
    seen: set[int] = set()
    order = {r: i for i, r in enumerate(RULES)}
    links: Counter[str] = Counter()
    tps: Counter[str] = Counter()
    positive_rank: list[int] = []  # rule index that decided each positive
    decided: Counter[str] = Counter()
    for rid, res in zip(record_ids, resolutions, strict=True):
        work = truth[rid]
        decided[res.rule] += 1
        if work in seen:
            positive_rank.append(order[res.rule])
        seen.add(work)
        if res.is_new:
            founder.setdefault(res.entity_id, work)
            continue
        links[res.rule] += 1
        # an entity founded outside this run counts by its first record seen here
        if founder.setdefault(res.entity_id, work) == work:
            tps[res.rule] += 1
    per_rule = []
    for rule in RULES[:-1]:
        if (rule == "platform_id" and not links[rule]) or (
                rule != "platform_id" and rule not in rules):
            continue
        reached = sum(1 for rank in positive_rank if rank >= order[rule])
        per_rule.append(_score(rule, links[rule], tps[rule], reached))
    overall = _score("overall", sum(links.values()), sum(tps.values()), len(positive_rank))
    return ResolutionReport(per_rule, overall, _pairwise(record_ids, resolutions, truth),
                            len(record_ids), len(founder), len(seen), dict(decided))


def _pairwise(record_ids: Sequence[str], resolutions: Sequence[Resolution],
              truth: Mapping[str, int]) -> RuleScore:
    def pairs(counts: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    cells: Counter[object] = Counter()
    entities: Counter[object] = Counter()
    works: Counter[object] = Counter()
    for rid, res in zip(record_ids, resolutions, strict=True):
        cells[(res.entity_id, truth[rid])] += 1
        entities[res.entity_id] += 1
        works[truth[rid]] += 1
    return _score("pairwise", pairs(entities), pairs(cells), pairs(works))


__all__ = ["ResolutionReport", "RuleScore", "evaluate_resolution"]
