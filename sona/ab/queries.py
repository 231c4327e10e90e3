"""Read-side of the A/B store: per-user, per-exposure and per-variant frames for analysis.

The unit of analysis is the user (the unit of randomisation): a user counts in the arm
they were assigned to once they were exposed at least once. Per user we sum the metric
over the events attributed to the experiment and, for CUPED, over the same user's events
recorded before the experiment started (any attribution).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, func, select

from sona.ab import tables as t
from sona.ab.records import Experiment

USER_COLUMNS = ["user_id", "variant", "assigned_at", "exposures", "first_exposure_at",
                "events", "value", "pre_events", "pre_value"]


def _frame(engine: Engine, query: Any, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def user_frame(engine: Engine, experiment: Experiment, metric: str) -> pd.DataFrame:
    """One row per assigned user: variant, exposures, in-experiment and pre-period sums.

    Columns: :data:`USER_COLUMNS` (counts are 0 and sums 0.0 where nothing happened).
    """
    e = experiment.id
    names = {v.id: v.name for v in experiment.variants}
    users = _frame(engine, select(t.assignments.c.user_id, t.assignments.c.variant_id,
                                  t.assignments.c.assigned_at)
                   .where(t.assignments.c.experiment_id == e),
                   ["user_id", "variant", "assigned_at"])
    users["variant"] = users["variant"].map(names)
    exposed = _frame(engine, select(t.exposures.c.user_id, func.count(),
                                    func.min(t.exposures.c.created_at))
                     .where(t.exposures.c.experiment_id == e).group_by(t.exposures.c.user_id),
                     ["user_id", "exposures", "first_exposure_at"])
    during = _frame(engine, select(t.outcomes.c.user_id, func.count(), func.sum(t.outcomes.c.value))
                    .where((t.outcomes.c.experiment_id == e) & (t.outcomes.c.metric == metric))
                    .group_by(t.outcomes.c.user_id), ["user_id", "events", "value"])
    start = experiment.started_at if experiment.started_at is not None else time.time()
    o, a = t.outcomes, t.assignments
    pre = _frame(engine, select(o.c.user_id, func.count(), func.sum(o.c.value))
                 .select_from(o.join(a, and_(a.c.user_id == o.c.user_id,
                                             a.c.experiment_id == e)))
                 .where((o.c.metric == metric) & (o.c.recorded_at < start))
                 .group_by(o.c.user_id), ["user_id", "pre_events", "pre_value"])
    out = users.merge(exposed, on="user_id", how="left").merge(during, on="user_id", how="left")
    out = out.merge(pre, on="user_id", how="left")
    for col in ("exposures", "events", "pre_events"):
        out[col] = out[col].fillna(0).astype("int64")
    for col in ("value", "pre_value"):
        out[col] = out[col].fillna(0.0).astype("float64")
    out["first_exposure_at"] = out["first_exposure_at"].astype("float64")
    return out[USER_COLUMNS].sort_values(["variant", "user_id"]).reset_index(drop=True)


def outcome_frame(engine: Engine, experiment: Experiment, metric: str) -> pd.DataFrame:
    """Attributed events of one metric: user_id, variant, value, recorded_at."""
    names = {v.id: v.name for v in experiment.variants}
    out = _frame(engine, select(t.outcomes.c.user_id, t.outcomes.c.variant_id,
                                t.outcomes.c.value, t.outcomes.c.recorded_at)
                 .where((t.outcomes.c.experiment_id == experiment.id)
                        & (t.outcomes.c.metric == metric)),
                 ["user_id", "variant", "value", "recorded_at"])
    out["variant"] = out["variant"].map(names)
    return out


def exposure_item_frame(engine: Engine, experiment: Experiment, metric: str = "click",
                        variant: str | None = None) -> pd.DataFrame:
    """Every shown item with its logged propensity and reward (the OPE input).

    Columns: exposure_id, user_id, variant, position, item_id, score, propensity,
    created_at, reward (sum of ``metric`` events naming this exposure and item; 0.0 if none).
    """
    x, i, o = t.exposures, t.exposure_items, t.outcomes
    names = {v.id: v.name for v in experiment.variants}
    q = (select(x.c.id, x.c.user_id, x.c.variant_id, i.c.position, i.c.item_id, i.c.score,
                i.c.propensity, x.c.created_at)
         .select_from(x.join(i, i.c.exposure_id == x.c.id))
         .where(x.c.experiment_id == experiment.id))
    if variant is not None:
        q = q.where(x.c.variant_id == experiment.variant(variant).id)
    shown = _frame(engine, q, ["exposure_id", "user_id", "variant", "position", "item_id",
                               "score", "propensity", "created_at"])
    shown["variant"] = shown["variant"].map(names)
    rewards = _frame(engine, select(o.c.exposure_id, o.c.item_id, func.sum(o.c.value))
                     .where((o.c.experiment_id == experiment.id) & (o.c.metric == metric)
                            & o.c.exposure_id.is_not(None))
                     .group_by(o.c.exposure_id, o.c.item_id),
                     ["exposure_id", "item_id", "reward"])
    out = shown.merge(rewards, on=["exposure_id", "item_id"], how="left")
    out["reward"] = out["reward"].fillna(0.0).astype("float64")
    return out.sort_values(["created_at", "exposure_id", "position"]).reset_index(drop=True)


def metrics_summary(engine: Engine, experiment: Experiment) -> dict[str, Any]:
    """SPEC §2.10 ``/experiments/{id}/metrics`` body: per variant exposures, unique users
    and per-metric ``{count, sum, mean, conversion_rate = count / exposures}``."""
    e = experiment.id
    x, o = t.exposures, t.outcomes
    with engine.connect() as conn:
        exp_rows = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(
            select(x.c.variant_id, func.count(), func.count(func.distinct(x.c.user_id)))
            .where(x.c.experiment_id == e).group_by(x.c.variant_id))}
        metric_rows = conn.execute(
            select(o.c.variant_id, o.c.metric, func.count(), func.sum(o.c.value))
            .where(o.c.experiment_id == e).group_by(o.c.variant_id, o.c.metric)).all()
    body: dict[str, Any] = {}
    for v in experiment.variants:
        exposures, users = exp_rows.get(v.id, (0, 0))
        conversions = {}
        for vid, metric, count, total in metric_rows:
            if vid != v.id:
                continue
            conversions[metric] = {
                "count": int(count), "sum": float(total), "mean": float(total) / int(count),
                "conversion_rate": int(count) / exposures if exposures else 0.0}
        body[v.id] = {"variant_name": v.name, "exposures": exposures, "unique_users": users,
                      "conversions": conversions}
    return body


def count_outcomes(engine: Engine, experiment_id: str | None = None) -> int:
    """Stored outcome rows (of one experiment, or all)."""
    q = select(func.count()).select_from(t.outcomes)
    if experiment_id is not None:
        q = q.where(t.outcomes.c.experiment_id == experiment_id)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


__all__ = ["USER_COLUMNS", "count_outcomes", "exposure_item_frame", "metrics_summary",
           "outcome_frame", "user_frame"]
