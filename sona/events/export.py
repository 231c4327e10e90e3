"""The event log as an interactions dataset: what ``sona events export`` writes.

The output is an interaction file in the canonical columns ``sona.data`` reads
(``user_id, item_id, rating, timestamp, weight``), validated by the same code as any
dataset file (:meth:`Interactions.from_frame` before writing, :func:`load_interactions`
on the written file), so an experiment YAML trains on it with ``dataset: {name: file,
path: ...}``.

Rows come from the viewing signals of the log (:mod:`sona.events.viewing`: views, ratings,
playback progress, completions, abandonments), one row per ``(user, item)``:

* ``weight``: the largest SPEC §2.1 engagement weight (:func:`sona.profile.engagement_weight`)
  among the pair's events, so a completed, highly rated title weighs more than a glance;
  pairs whose every event is below the profile's ``min_completion`` (0.3) or weighs 0
  (dismissed) are left out, exactly as the preference vector ignores them;
* ``rating``: the pair's latest rating (NaN when never rated);
* ``timestamp``: the pair's latest event time (Unix seconds).

With ``base`` (e.g. ML-100K's interactions) the two are merged into one file: a pair in
both keeps one row (the larger weight, the latest timestamp, the latest rating), so a
split can never put the same pair in train and test.

Rows are written by user (numerically when every id is an integer), then time, then item,
not in the order the log stored them: concurrent sessions interleave users in the log
differently on every run, and a split draws its random numbers in row order, so the same
viewings must make the same rows in the same order to be split (and trained on) the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sona import io
from sona.data.interactions import INTERACTION_COLUMNS, Interactions, load_interactions
from sona.errors import DataError
from sona.events.log import EventLog, StoredEvent
from sona.events.viewing import DEFAULT_RULES, ViewingRules, to_viewing_event
from sona.profile import ProfileConfig, engagement_weight

_PROFILE = ProfileConfig()


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_events` read and wrote."""

    path: Path
    n_events: int  # log rows read
    n_viewing: int  # of which viewing signals
    n_event_rows: int  # (user, item) rows they became
    n_base_rows: int  # rows of the merged base dataset (0 without one)
    n_rows: int  # rows written
    n_users: int
    n_items: int
    md5: str


def event_interactions(events: Iterable[StoredEvent], *, rules: ViewingRules = DEFAULT_RULES,
                       profile: ProfileConfig = _PROFILE) -> tuple[pd.DataFrame, int]:
    """One canonical row per ``(user, item)`` from the viewing signals of ``events``.

    Returns:
        the frame (columns ``INTERACTION_COLUMNS``, ids as strings) and the number of
        viewing signals seen.
    """
    users, items, ratings, times, weights = [], [], [], [], []
    for stored in events:
        viewing = to_viewing_event(stored.event, rules)
        if viewing is None:
            continue
        users.append(stored.event.user_id)
        items.append(str(viewing.content_id))
        ratings.append(np.nan if viewing.rating is None else float(viewing.rating))
        times.append(float(viewing.timestamp))
        qualifies = viewing.completion_rate >= profile.min_completion
        weights.append(engagement_weight(viewing) if qualifies else 0.0)
    frame = pd.DataFrame({"user_id": pd.Series(users, dtype=object),
                          "item_id": pd.Series(items, dtype=object),
                          "rating": np.asarray(ratings, np.float64),
                          "timestamp": np.asarray(times, np.float64),
                          "weight": np.asarray(weights, np.float64)})
    return _one_row_per_pair(frame), len(frame)


def _one_row_per_pair(frame: pd.DataFrame) -> pd.DataFrame:
    """Collapse repeated ``(user, item)`` rows: max weight, latest time, latest rating."""
    if frame.empty:
        return frame.loc[:, list(INTERACTION_COLUMNS)]
    ordered = frame.sort_values("timestamp", kind="stable")
    grouped = ordered.groupby(["user_id", "item_id"], sort=False)
    out = grouped.agg(weight=("weight", "max"), timestamp=("timestamp", "max"),
                      rating=("rating", "last")).reset_index()  # "last" skips NaN
    out = out[out["weight"] > 0]
    keys = pd.DataFrame({"user": _sort_key(out["user_id"]), "time": out["timestamp"],
                         "item": _sort_key(out["item_id"])})
    order = keys.sort_values(["user", "time", "item"], kind="stable").index
    return out.loc[order, list(INTERACTION_COLUMNS)].reset_index(drop=True)


def _sort_key(ids: pd.Series) -> pd.Series:
    """Ids as numbers when all are integers (1 < 2 < 10), else as strings."""
    text = ids.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        return numbers
    return text


def merge_with(base: Interactions, events: pd.DataFrame) -> pd.DataFrame:
    """``base``'s rows plus ``events``' rows, one row per pair (see module docstring)."""
    rows = base.frame.loc[:, list(INTERACTION_COLUMNS)].copy()
    for column in ("user_id", "item_id"):  # 1 and "1" are one id
        rows[column] = rows[column].astype(str)
    return _one_row_per_pair(pd.concat([rows, events], ignore_index=True))


def export_events(log: EventLog, out: str | Path, *, base: Interactions | None = None,
                  rules: ViewingRules = DEFAULT_RULES, progress: bool = True,
                  batch_size: int = 5000) -> ExportResult:
    """Write the log's interactions (merged with ``base`` when given) to ``out``.

    The format follows the suffix (``.parquet``, ``.tsv``, else CSV). Ids that are all
    integers are written as integers (as ML-100K's), otherwise as strings.

    Raises:
        DataError: nothing to write (no qualifying event and no base), or the frame fails
            the interaction validation (the message names the column and row).
    """
    total = log.count()
    scanned = tqdm(log.scan(batch_size=batch_size), total=total, desc="event log",
                   unit="event", disable=not progress)
    events, n_viewing = event_interactions(scanned, rules=rules)
    frame = merge_with(base, events) if base is not None else events
    if frame.empty:
        raise DataError(f"the event log has no qualifying viewing events ({total} events "
                        "read); nothing to export", path=log.url)
    data = Interactions.from_frame(frame, source=out)  # the dataset validator, before writing
    io.write_table(out, data.frame.loc[:, list(INTERACTION_COLUMNS)])
    written = load_interactions(out)  # and the reader experiments use, on the written file
    return ExportResult(Path(out), total, n_viewing, len(events),
                        0 if base is None else len(base), len(written), written.n_users,
                        written.n_items, io.md5sum(out))


__all__ = ["ExportResult", "event_interactions", "export_events", "merge_with"]
