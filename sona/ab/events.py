"""Recording outcome events in batches, idempotent by ``event_id``.

One batch is one transaction: every event is attributed, then all are inserted with
``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``, so the rows that came
back are exactly the new ones. A retried batch (the client never saw the reply) therefore
records nothing twice, and concurrent batches with overlapping ids never double count.

Attribution, first rule that applies:

1. ``exposure_id`` given: that exposure's experiment and variant (it must be the user's);
2. ``experiment_id`` given: the user's assignment in it (else rejected);
3. otherwise the first running or paused experiment (by start time) the user is
   assigned to, as ``/recommendations`` picks it;
4. otherwise no experiment: the row is kept with ``experiment_id`` NULL. Such events are
   the pre-period history CUPED uses as covariate.

Events naming a draft or completed experiment are rejected with a reason.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from sona.ab import tables as t
from sona.ab.records import METRIC_PATTERN, EventResult, EventStatus, OutcomeEvent
from sona.ab.repository import insert_ignore

_ACTIVE = ("running", "paused")


def _reject(event: OutcomeEvent, reason: str) -> EventResult:
    return EventResult(event.event_id, "rejected", event.experiment_id, None, reason)


def _invalid(event: OutcomeEvent) -> str | None:
    if not event.event_id or len(event.event_id) > 128:
        return "event_id must be 1-128 characters"
    if not event.user_id or len(event.user_id) > 128:
        return "user_id must be 1-128 characters"
    if not METRIC_PATTERN.match(event.metric or ""):
        return f"metric {event.metric!r} is not a lower-case identifier"
    if not math.isfinite(event.value):
        return "value must be finite"
    return None


def record_events(engine: Engine, events: Sequence[OutcomeEvent]) -> list[EventResult]:
    """Attribute and store a batch; one :class:`EventResult` per event, in input order."""
    now = time.time()
    results: list[EventResult | None] = [None] * len(events)
    first: dict[str, int] = {}
    for i, ev in enumerate(events):
        problem = _invalid(ev)
        if problem is not None:
            results[i] = _reject(ev, problem)
        elif ev.event_id in first:
            results[i] = EventResult(ev.event_id, "duplicate", reason="repeated in this batch")
        else:
            first[ev.event_id] = i
    todo = [i for i in first.values()]
    with engine.begin() as conn:
        attributed = _attribute(conn, [events[i] for i in todo])
        rows: list[dict[str, Any]] = []
        names: dict[str, tuple[str | None, str | None]] = {}
        for i, (exp_id, variant_id, variant_name, reason) in zip(todo, attributed, strict=True):
            ev = events[i]
            if reason is not None:
                results[i] = _reject(ev, reason)
                continue
            names[ev.event_id] = (exp_id, variant_name)
            rows.append({
                "event_id": ev.event_id, "experiment_id": exp_id, "variant_id": variant_id,
                "user_id": ev.user_id, "metric": ev.metric, "value": float(ev.value),
                "item_id": None if ev.item_id is None else str(ev.item_id),
                "position": ev.position, "exposure_id": ev.exposure_id,
                "recorded_at": now if ev.recorded_at is None else float(ev.recorded_at),
                "received_at": now,
                "metadata": None if ev.metadata is None else json.dumps(dict(ev.metadata),
                                                                       default=str)})
        new: set[str] = set()
        if rows:
            stmt = insert_ignore(conn, t.outcomes).returning(t.outcomes.c.event_id)
            new = {r[0] for r in conn.execute(stmt, rows)}
    for event_id, (exp_id, variant) in names.items():
        status: EventStatus = "recorded" if event_id in new else "duplicate"
        results[first[event_id]] = EventResult(
            event_id, status, exp_id, variant,
            None if status == "recorded" else "event_id already recorded")
    return [r for r in results if r is not None]


def _attribute(conn: Any, events: Sequence[OutcomeEvent]
               ) -> list[tuple[str | None, str | None, str | None, str | None]]:
    """``(experiment_id, variant_id, variant_name, reject_reason)`` per event."""
    if not events:
        return []
    exps = {r.id: r for r in conn.execute(select(
        t.experiments.c.id, t.experiments.c.status, t.experiments.c.started_at))}
    variant_names = {r.id: r.name for r in conn.execute(select(t.variants.c.id,
                                                               t.variants.c.name))}
    exposure_ids = sorted({e.exposure_id for e in events if e.exposure_id})
    exposed = {r.id: r for r in conn.execute(select(
        t.exposures.c.id, t.exposures.c.experiment_id, t.exposures.c.variant_id,
        t.exposures.c.user_id).where(t.exposures.c.id.in_(exposure_ids)))} if exposure_ids else {}
    users = sorted({e.user_id for e in events})
    assigned: dict[tuple[str, str], str] = {}
    for r in conn.execute(select(t.assignments.c.user_id, t.assignments.c.experiment_id,
                                 t.assignments.c.variant_id)
                          .where(t.assignments.c.user_id.in_(users))):
        assigned[(r.user_id, r.experiment_id)] = r.variant_id
    active = sorted((e for e in exps.values() if e.status in _ACTIVE),
                    key=lambda e: (e.started_at or 0.0, e.id))
    out: list[tuple[str | None, str | None, str | None, str | None]] = []
    for ev in events:
        exp_id, variant_id = ev.experiment_id, None
        if ev.exposure_id:
            exposure = exposed.get(ev.exposure_id)
            if exposure is None:
                out.append((None, None, None, f"unknown exposure_id {ev.exposure_id!r}"))
                continue
            if exposure.user_id != ev.user_id:
                out.append((None, None, None, "exposure_id belongs to another user"))
                continue
            if exp_id is not None and exp_id != exposure.experiment_id:
                out.append((None, None, None, "exposure_id is from another experiment"))
                continue
            exp_id, variant_id = exposure.experiment_id, exposure.variant_id
        elif exp_id is not None:
            if exp_id not in exps:
                out.append((None, None, None, f"unknown experiment_id {exp_id!r}"))
                continue
            variant_id = assigned.get((ev.user_id, exp_id))
            if variant_id is None:
                out.append((None, None, None, "user not in experiment"))
                continue
        else:
            for e in active:
                variant_id = assigned.get((ev.user_id, e.id))
                if variant_id is not None:
                    exp_id = e.id
                    break
        if exp_id is not None and exps[exp_id].status not in _ACTIVE:
            out.append((None, None, None, f"experiment is {exps[exp_id].status}"))
            continue
        out.append((exp_id, variant_id, variant_names.get(variant_id or ""), None))
    return out


__all__ = ["record_events"]
