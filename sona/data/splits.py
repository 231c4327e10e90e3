"""Train/test(/validation) splits of an interaction log: seeded, pure, no I/O.

Every function returns a :class:`Split` whose parts are rows of the input, disjoint and
together complete, each re-indexed as its own :class:`~sona.data.interactions.Interactions`
(``data.with_frame(part)``): a model fitted on ``train`` knows only the train ids, and
evaluation maps test ids through the model, which raises on unknown ids.

The stratified and random splits reproduce the Microsoft Recommenders splitters
(``python_stratified_split`` and ``python_random_split`` with a ratio list) row for row on
the same input order, including their legacy ``numpy.random.RandomState`` streams, so
numbers are comparable with the published benchmark notebooks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from sona.data.interactions import Interactions
from sona.errors import DataError

log = logging.getLogger(__name__)

SplitMethod = Literal["stratified", "random", "leave_last_out", "temporal"]
GroupBy = Literal["user", "item"]


class Split(NamedTuple):
    """Parts of a split; ``validation`` is ``None`` unless the method made one."""

    train: Interactions
    test: Interactions
    validation: Interactions | None = None


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """How to split an interaction log (the ``split:`` section of an experiment YAML)."""

    # which splitter: per-group ratio, global random, latest-n per group, or global time cutoff
    method: SplitMethod = "stratified"
    # stratified: fraction of each group's rows that go to train, in (0, 1)
    ratio: float = 0.75
    # random: (train, test) or (train, validation, test) fractions summing to 1
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    # stratified / leave_last_out: the grouping column, "user" or "item"
    by: GroupBy = "user"
    # leave_last_out: number of latest rows per group held out for test
    n: int = 1
    # temporal: explicit cutoff timestamp (Unix seconds); None means use `quantile`
    cutoff: float | None = None
    # temporal: quantile of all timestamps used as cutoff when `cutoff` is None, in (0, 1)
    quantile: float = 0.8
    # stratified / random: seed of the shuffling stream
    seed: int = 42


def stratified_split(
    data: Interactions,
    ratio: float = 0.75,
    *,
    by: GroupBy = "user",
    seed: int = 42,
) -> Split:
    """Per-group ratio split (Microsoft Recommenders ``python_stratified_split``).

    Each row draws a uniform number from ``RandomState(seed)`` in input order; within each
    group (user or item) rows are ranked by that number, and a row with rank ``r`` (1-based)
    of ``n`` goes to train iff ``r / n <= ratio``. So each group puts ``floor(ratio * n)``
    rows in train (up to float rounding of ``r / n``) and the rest in test, and the global
    train share is slightly below ``ratio`` (74.65% on ML-100K at 0.75, seed 42).

    Small groups follow the same rule, as in Microsoft Recommenders: with ``ratio=0.75`` a
    group of one row goes wholly to **test** (1/1 > 0.75) and a group of two or three keeps
    one or two rows in train. Its default ``min_rating=1`` filters nothing; we apply no
    filter either (filter the log before splitting if cold groups must be dropped).

    Args:
        data: the interaction log.
        ratio: fraction of each group's rows that go to train, strictly between 0 and 1.
        by: group by "user" (the usual protocol) or "item".
        seed: seed of the shuffling stream.

    Returns:
        ``Split(train, test, None)``.

    Raises:
        ValueError: ``ratio`` outside (0, 1) or ``by`` not "user"/"item".
        DataError: a part comes out empty (names the part).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"stratified split ratio must be in (0, 1), got {ratio}")
    codes = _group_codes(data, by)
    draws = np.random.RandomState(seed).rand(len(data))
    order = np.lexsort((draws, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes) + 1
    in_train = np.empty(len(data), dtype=bool)
    in_train[order] = rank / np.repeat(sizes, sizes) <= ratio
    return _make_parts(data, "stratified", train=in_train, test=~in_train)


def random_split(
    data: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 42,
) -> Split:
    """Global random split (Microsoft Recommenders ``split_pandas_data_with_ratios``).

    Rows are shuffled with ``frame.sample(frac=1, random_state=seed)`` and cut at
    ``round(cumulative_ratio * n_rows)``.

    Args:
        data: the interaction log.
        ratios: ``(train, test)`` or ``(train, validation, test)`` fractions, each > 0,
            summing to 1 (within 1e-9).
        seed: seed of the shuffle.

    Returns:
        ``Split(train, test, validation)``; ``validation`` is ``None`` for two ratios.

    Raises:
        ValueError: not 2 or 3 ratios, a ratio <= 0, or a sum other than 1.
        DataError: a part comes out empty (names the part).
    """
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) not in (2, 3):
        raise ValueError(f"random split needs 2 or 3 ratios, got {len(ratios)}: {ratios}")
    if any(r <= 0 for r in ratios):
        raise ValueError(f"random split ratios must all be > 0, got {ratios}")
    if not math.isclose(math.fsum(ratios), 1.0, rel_tol=0.0, abs_tol=1e-9):
        raise ValueError(f"random split ratios must sum to 1, got {ratios} "
                         f"(sum {math.fsum(ratios)})")
    n = len(data)
    shuffled = pd.Series(np.arange(n)).sample(frac=1, random_state=seed).to_numpy()
    cuts = [round(c * n) for c in np.cumsum(ratios)[:-1]]
    part = np.empty(n, dtype=np.int64)
    for i, chunk in enumerate(np.split(shuffled, cuts)):
        part[chunk] = i
    if len(ratios) == 2:
        return _make_parts(data, "random", train=part == 0, test=part == 1)
    return _make_parts(data, "random", train=part == 0, validation=part == 1, test=part == 2)


def leave_last_out(data: Interactions, n: int = 1, *, by: GroupBy = "user") -> Split:
    """Hold out each group's ``n`` latest rows for test.

    Rows are ordered by ``timestamp``; ties are broken by item (user, when ``by="item"``)
    index, i.e. by sorted external id, then by input position, so the split does not
    depend on how the log happens to be shuffled unless rows tie on all of these. Groups
    with ``n`` rows or fewer stay wholly in train (nothing would be left to learn from).

    Args:
        data: the interaction log; needs a timestamp on every row.
        n: rows per group held out, >= 1.
        by: group by "user" or "item".

    Returns:
        ``Split(train, test, None)``.

    Raises:
        ValueError: ``n < 1`` or ``by`` not "user"/"item".
        DataError: a timestamp is missing (names the first row), or a part is empty.
    """
    if n < 1:
        raise ValueError(f"leave_last_out needs n >= 1, got {n}")
    codes = _group_codes(data, by)
    stamps = _timestamps(data, "leave_last_out")
    other = data.frame["item_idx" if by == "user" else "user_idx"].to_numpy()
    position = np.arange(len(data))
    order = np.lexsort((position, other, stamps, codes))
    sorted_codes = codes[order]
    ends = np.flatnonzero(np.r_[sorted_codes[1:] != sorted_codes[:-1], True]) + 1
    sizes = np.diff(np.r_[0, ends])
    from_end = np.repeat(ends, sizes) - np.arange(len(order))  # 1 for a group's latest row
    in_test = np.empty(len(data), dtype=bool)
    in_test[order] = (from_end <= n) & (np.repeat(sizes, sizes) > n)
    return _make_parts(data, "leave_last_out", train=~in_test, test=in_test)


def temporal_split(
    data: Interactions,
    cutoff: float | None = None,
    *,
    quantile: float = 0.8,
) -> Split:
    """Global time split: train strictly before ``cutoff``, test at or after it.

    Args:
        data: the interaction log; needs a timestamp on every row.
        cutoff: the cutoff (same unit as ``timestamp``); ``None`` uses the ``quantile`` of
            all timestamps (numpy's default linear interpolation).
        quantile: used when ``cutoff`` is ``None``; strictly between 0 and 1.

    Returns:
        ``Split(train, test, None)``.

    Raises:
        ValueError: ``quantile`` outside (0, 1) or a non-finite ``cutoff``.
        DataError: a timestamp is missing (names the first row), or a part is empty
            (e.g. all rows share one timestamp).
    """
    stamps = _timestamps(data, "temporal")
    if cutoff is None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"temporal split quantile must be in (0, 1), got {quantile}")
        cutoff = float(np.quantile(stamps, quantile))
    elif not math.isfinite(cutoff):
        raise ValueError(f"temporal split cutoff must be finite, got {cutoff}")
    log.debug("temporal split at cutoff %s", cutoff)
    before = stamps < cutoff
    return _make_parts(data, "temporal", train=before, test=~before)


def cold_split(
    data: Interactions,
    *,
    by: GroupBy = "user",
    fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Hold out whole users (or items): every row of a random ``fraction`` of them is test.

    The cold-start protocol (SPEC §2.8): a model fitted on ``train`` has never seen a test
    user (``by="user"``) or a test item (``by="item"``), so it must recommend from side data
    (demographics, signup genres, item text) rather than interactions. The held-out groups
    are ``round(fraction * n_groups)`` (at least 1, at most ``n_groups - 1``) distinct ids
    drawn without replacement by ``numpy.random.default_rng(seed)`` from the groups in
    index (sorted id) order, so the split does not depend on row order.

    Args:
        data: the interaction log.
        by: hold out users ("user") or items ("item").
        fraction: share of the groups held out, strictly between 0 and 1.
        seed: seed of the draw.

    Returns:
        ``Split(train, test, None)``; the two parts share no ``by`` id.

    Raises:
        ValueError: ``fraction`` outside (0, 1) or ``by`` not "user"/"item".
        DataError: fewer than two groups (nothing could stay in train).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"cold split fraction must be in (0, 1), got {fraction}")
    codes = _group_codes(data, by)
    n_groups = data.n_users if by == "user" else data.n_items
    if n_groups < 2:
        raise DataError(f"cold split by {by} needs at least 2 {by}s, got {n_groups}",
                        path=data.source)
    n_cold = min(max(1, round(fraction * n_groups)), n_groups - 1)
    cold = np.zeros(n_groups, dtype=bool)
    cold[np.random.default_rng(seed).choice(n_groups, size=n_cold, replace=False)] = True
    in_test = cold[codes]
    return _make_parts(data, "cold", train=~in_test, test=in_test)


def make_split(data: Interactions, config: SplitConfig) -> Split:
    """Run the splitter ``config.method`` with the fields it uses.

    Raises:
        ValueError: unknown method, or what the chosen splitter raises.
    """
    if config.method == "stratified":
        return stratified_split(data, config.ratio, by=config.by, seed=config.seed)
    if config.method == "random":
        return random_split(data, config.ratios, seed=config.seed)
    if config.method == "leave_last_out":
        return leave_last_out(data, config.n, by=config.by)
    if config.method == "temporal":
        return temporal_split(data, config.cutoff, quantile=config.quantile)
    raise ValueError(f"unknown split method {config.method!r}; expected one of "
                     "'stratified', 'random', 'leave_last_out', 'temporal'")


def _group_codes(data: Interactions, by: str) -> np.ndarray:
    if by not in ("user", "item"):
        raise ValueError(f"split 'by' must be 'user' or 'item', got {by!r}")
    return data.frame[f"{by}_idx"].to_numpy()


def _timestamps(data: Interactions, method: str) -> np.ndarray:
    stamps = data.frame["timestamp"].to_numpy(np.float64)
    missing = np.isnan(stamps)
    if missing.any():
        raise DataError(f"{method} split needs a timestamp on every row; missing",
                        path=data.source, column="timestamp",
                        row=int(np.flatnonzero(missing)[0]))
    return stamps


def _make_parts(data: Interactions, method: str, **masks: np.ndarray) -> Split:
    parts: dict[str, Interactions] = {}
    for name, mask in masks.items():
        if not mask.any():
            raise DataError(f"{method} split produced an empty {name} part "
                            f"from {len(data)} rows", path=data.source)
        frame: pd.DataFrame = data.frame.loc[mask]
        parts[name] = data.with_frame(frame)
    log.debug("%s split sizes: %s", method, {k: len(v) for k, v in parts.items()})
    return Split(parts["train"], parts["test"], parts.get("validation"))
