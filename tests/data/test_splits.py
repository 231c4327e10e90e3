from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sona.config import from_dict
from sona.data import (
    Interactions,
    Split,
    SplitConfig,
    cold_split,
    leave_last_out,
    make_split,
    random_split,
    stratified_split,
    temporal_split,
)
from sona.errors import DataError
from sona.testing.fixtures import power_law_frame, random_interactions

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much])
KEY = ["user_id", "item_id"]


@st.composite
def logs(draw: st.DrawFn, min_rows: int = 2) -> Interactions:
    """Small logs: unique (user, item) pairs, integer timestamps with many ties."""
    pairs = draw(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 11)),
                          min_size=min_rows, max_size=60, unique=True))
    stamps = draw(st.lists(st.integers(0, 15), min_size=len(pairs), max_size=len(pairs)))
    frame = pd.DataFrame({
        "user_id": [100 + u for u, _ in pairs],
        "item_id": [500 + i for _, i in pairs],
        "rating": np.arange(len(pairs)) % 5 + 1.0,
        "timestamp": np.asarray(stamps, dtype=float),
    })
    return Interactions.from_frame(frame)


def _split_or_reject(fn, *args, **kwargs) -> Split:
    """Run a splitter; an empty part (a legitimate DataError on tiny logs) rejects the case."""
    try:
        return fn(*args, **kwargs)
    except DataError as exc:
        assert "empty" in str(exc)
        assume(False)
        raise


def _rows(part: Interactions | None) -> list[tuple]:
    if part is None:
        return []
    return [tuple(r) for r in part.frame[[*KEY, "rating", "timestamp"]].itertuples(index=False)]


def _assert_partition(data: Interactions, split: Split) -> None:
    parts = [split.train, split.test] + ([split.validation] if split.validation else [])
    pieces = [set(_rows(p)) for p in parts]
    assert sum(len(p) for p in parts) == len(data)
    assert set().union(*pieces) == set(_rows(data))  # complete
    for a in range(len(pieces)):
        for b in range(a + 1, len(pieces)):
            assert not pieces[a] & pieces[b]  # disjoint
    for part in parts:  # each part is re-indexed on its own ids
        assert part.users.ids_array.tolist() == sorted(set(part.frame["user_id"]))
        assert part.items.ids_array.tolist() == sorted(set(part.frame["item_id"]))
        assert part.frame["user_idx"].max() == part.n_users - 1


def _signature(split: Split) -> tuple:
    return tuple(tuple(sorted(_rows(p))) for p in split if p is not None)


SPLITTERS = {
    "stratified": lambda d, s: stratified_split(d, 0.75, seed=s),
    "stratified_item": lambda d, s: stratified_split(d, 0.6, by="item", seed=s),
    "random2": lambda d, s: random_split(d, (0.7, 0.3), seed=s),
    "random3": lambda d, s: random_split(d, seed=s),
    "leave_last_out": lambda d, s: leave_last_out(d, 1),
    "leave_last_out_item": lambda d, s: leave_last_out(d, 1, by="item"),
    "temporal": lambda d, s: temporal_split(d, quantile=0.6),
    "cold_user": lambda d, s: cold_split(d, by="user", fraction=0.3, seed=s),
    "cold_item": lambda d, s: cold_split(d, by="item", fraction=0.3, seed=s),
}


@pytest.mark.parametrize("name", sorted(SPLITTERS))
@SETTINGS
@given(data=logs(min_rows=13), seed=st.integers(0, 2**31 - 1))  # 13 > 12 items: no empty part
def test_parts_are_disjoint_complete_and_reproducible(name, data, seed):
    split = _split_or_reject(SPLITTERS[name], data, seed)
    _assert_partition(data, split)
    assert _signature(SPLITTERS[name](data, seed)) == _signature(split)


@pytest.mark.parametrize("name", ["stratified", "stratified_item", "random2", "random3"])
def test_different_seeds_usually_give_different_splits(name):
    data = random_interactions(seed=3)
    signatures = {_signature(SPLITTERS[name](data, seed)) for seed in range(8)}
    assert len(signatures) == 8


@SETTINGS
@given(data=logs(), ratio=st.floats(0.05, 0.95), by=st.sampled_from(["user", "item"]),
       seed=st.integers(0, 1000))
def test_stratified_ratio_holds_per_group(data, ratio, by, seed):
    split = _split_or_reject(stratified_split, data, ratio, by=by, seed=seed)
    col = f"{by}_id"
    sizes = data.frame[col].value_counts()
    train_sizes = split.train.frame[col].value_counts().reindex(sizes.index, fill_value=0)
    for group, n in sizes.items():
        train_n = int(train_sizes[group])
        assert abs(train_n - round(ratio * n)) <= 1
        # Microsoft Recommenders' rule: rank r of n goes to train iff r / n <= ratio
        assert train_n == sum(r / n <= ratio for r in range(1, n + 1))


def _ms_reference_stratified(frame: pd.DataFrame, ratio: float, seed: int) -> set[tuple]:
    """The python_stratified_split procedure restated with pandas (independent of sona)."""
    df = frame[KEY].copy()
    df["draw"] = np.random.RandomState(seed).rand(len(df))
    df = df.sort_values(["user_id", "draw"])
    rank = df.groupby("user_id").cumcount() + 1
    size = df.groupby("user_id")["user_id"].transform("size")
    return set(map(tuple, df.loc[rank / size <= ratio, KEY].to_numpy().tolist()))


@pytest.mark.parametrize("seed", [42, 7])
def test_stratified_matches_microsoft_recommenders_row_for_row(seed):
    frame = power_law_frame(150, 200, 3000, seed=seed)
    split = stratified_split(Interactions.from_frame(frame), 0.75, seed=seed)
    assert set(map(tuple, split.train.frame[KEY].to_numpy().tolist())) == \
        _ms_reference_stratified(frame, 0.75, seed)


def test_stratified_small_groups_follow_the_ms_rule():
    # user 1: one row -> wholly test (1/1 > 0.75); user 2: two rows -> one each;
    # user 3: four rows -> three train (3/4 <= 0.75)
    frame = pd.DataFrame({"user_id": [1, 2, 2, 3, 3, 3, 3], "item_id": [1, 1, 2, 1, 2, 3, 4]})
    split = stratified_split(Interactions.from_frame(frame))
    assert split.train.frame["user_id"].value_counts().to_dict() == {2: 1, 3: 3}
    assert split.test.frame["user_id"].value_counts().to_dict() == {1: 1, 2: 1, 3: 1}


@SETTINGS
@given(data=logs(), n=st.integers(1, 3), by=st.sampled_from(["user", "item"]))
def test_leave_last_out_never_puts_the_future_in_train(data, n, by):
    split = _split_or_reject(leave_last_out, data, n, by=by)
    col = f"{by}_id"
    sizes = data.frame[col].value_counts()
    test_sizes = split.test.frame[col].value_counts()
    for group, size in sizes.items():
        expected = n if size > n else 0
        assert int(test_sizes.get(group, 0)) == expected
    last_train = split.train.frame.groupby(col)["timestamp"].max()
    first_test = split.test.frame.groupby(col)["timestamp"].min()
    assert (last_train.reindex(first_test.index) <= first_test).all()


@SETTINGS
@given(data=logs(), seed=st.integers(0, 1000))
def test_leave_last_out_ties_do_not_depend_on_row_order(data, seed):
    split = _split_or_reject(leave_last_out, data)
    shuffled = data.frame.sample(frac=1, random_state=seed)
    again = leave_last_out(data.with_frame(shuffled))
    assert _signature(again) == _signature(split)


def test_leave_last_out_tie_break_is_by_item_id():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [30, 10, 20, 5, 6],
                          "timestamp": [5.0, 9.0, 9.0, 1.0, 2.0]})
    split = leave_last_out(Interactions.from_frame(frame))
    assert sorted(map(tuple, split.test.frame[KEY].to_numpy().tolist())) == [(1, 20), (2, 6)]


@SETTINGS
@given(data=logs(), quantile=st.floats(0.05, 0.95))
def test_temporal_split_train_is_strictly_before_test(data, quantile):
    split = _split_or_reject(temporal_split, data, quantile=quantile)
    cutoff = np.quantile(data.frame["timestamp"], quantile)
    assert split.train.frame["timestamp"].max() < cutoff <= split.test.frame["timestamp"].min()


def test_temporal_split_explicit_cutoff():
    data = Interactions.from_frame(pd.DataFrame(
        {"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 2], "timestamp": [1.0, 2.0, 3.0, 4.0]}))
    split = temporal_split(data, 3.0)
    assert split.train.frame["timestamp"].tolist() == [1.0, 2.0]
    assert split.test.frame["timestamp"].tolist() == [3.0, 4.0]
    assert split.validation is None


@pytest.mark.parametrize("fn", [leave_last_out, temporal_split])
def test_time_splits_need_timestamps(fn):
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1],
                          "timestamp": [1.0, np.nan, 3.0]})
    with pytest.raises(DataError, match=r"timestamp.*column 'timestamp', row 1"):
        fn(Interactions.from_frame(frame))


def test_empty_part_names_the_split():
    same_time = Interactions.from_frame(pd.DataFrame(
        {"user_id": [1, 2], "item_id": [1, 1], "timestamp": [7.0, 7.0]}))
    with pytest.raises(DataError, match="temporal split produced an empty train part"):
        temporal_split(same_time)
    singletons = Interactions.from_frame(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1]}))
    with pytest.raises(DataError, match="stratified split produced an empty train part"):
        stratified_split(singletons)
    with pytest.raises(DataError, match="leave_last_out split produced an empty test part"):
        leave_last_out(Interactions.from_frame(pd.DataFrame(
            {"user_id": [1, 2], "item_id": [1, 1], "timestamp": [1.0, 2.0]})))


def test_random_split_sizes_follow_rounded_cumulative_ratios():
    data = random_interactions(n_interactions=901)
    split = random_split(data, (0.8, 0.1, 0.1))
    assert (len(split.train), len(split.validation), len(split.test)) == (721, 90, 90)
    two = random_split(data, (0.75, 0.25))
    assert (len(two.train), len(two.test), two.validation) == (676, 225, None)


def test_random_split_matches_microsoft_recommenders_shuffle():
    frame = power_law_frame(seed=5)
    split = random_split(Interactions.from_frame(frame), (0.8, 0.1, 0.1), seed=42)
    shuffled = frame.sample(frac=1, random_state=42)  # split_pandas_data_with_ratios
    n = len(frame)
    expected_test = shuffled.iloc[round(0.9 * n):]
    assert set(map(tuple, split.test.frame[KEY].to_numpy().tolist())) == \
        set(map(tuple, expected_test[KEY].to_numpy().tolist()))


@pytest.mark.parametrize("ratios", [(0.8, 0.1), (0.5, 0.3, 0.3), (1.0,), (0.4, 0.2, 0.2, 0.2),
                                    (1.1, -0.1), (0.0, 1.0)])
def test_random_split_rejects_bad_ratios(ratios):
    with pytest.raises(ValueError, match="random split"):
        random_split(random_interactions(), ratios)


@pytest.mark.parametrize(("call", "message"), [
    (lambda d: stratified_split(d, 1.0), "ratio must be in"),
    (lambda d: stratified_split(d, 0.0), "ratio must be in"),
    (lambda d: stratified_split(d, by="session"), "'user' or 'item'"),
    (lambda d: leave_last_out(d, 0), "n >= 1"),
    (lambda d: temporal_split(d, quantile=1.0), "quantile must be in"),
    (lambda d: temporal_split(d, math.inf), "cutoff must be finite"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(random_interactions())


@pytest.mark.parametrize(("config", "direct"), [
    (SplitConfig(), lambda d: stratified_split(d)),
    (SplitConfig(method="stratified", ratio=0.6, by="item", seed=3),
     lambda d: stratified_split(d, 0.6, by="item", seed=3)),
    (SplitConfig(method="random", ratios=(0.7, 0.3), seed=1),
     lambda d: random_split(d, (0.7, 0.3), seed=1)),
    (SplitConfig(method="leave_last_out", n=2), lambda d: leave_last_out(d, 2)),
    (SplitConfig(method="temporal", quantile=0.5), lambda d: temporal_split(d, quantile=0.5)),
    (SplitConfig(method="temporal", cutoff=8.8e8), lambda d: temporal_split(d, 8.8e8)),
])
def test_make_split_dispatches_with_the_config_fields(config, direct):
    data = random_interactions(seed=4)
    assert _signature(make_split(data, config)) == _signature(direct(data))


def test_split_config_is_frozen_and_loads_strictly():
    config = from_dict(SplitConfig, {"method": "random", "ratios": [0.6, 0.2, 0.2]})
    assert config.ratios == (0.6, 0.2, 0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown split method 'bogus'"):
        make_split(random_interactions(), SplitConfig(method="bogus"))  # type: ignore[arg-type]


@pytest.mark.realdata
def test_stratified_split_on_ml100k_keeps_75_percent(ml100k):
    data = ml100k.interactions
    split = stratified_split(data, 0.75, seed=42)
    share = len(split.train) / len(data)
    assert abs(share - 0.75) <= 0.005
    assert len(split.train) == 74_646  # floor(0.75 * n) per user, measured
    assert len(split.train) + len(split.test) == 100_000
    assert split.train.n_users == split.test.n_users == 943


@SETTINGS
@given(data=logs(min_rows=4), fraction=st.floats(0.05, 0.95), by=st.sampled_from(["user", "item"]),
       seed=st.integers(0, 2**31 - 1))
def test_cold_split_holds_out_whole_groups(data, fraction, by, seed):
    col = f"{by}_id"
    assume(data.frame[col].nunique() >= 2)
    split = cold_split(data, by=by, fraction=fraction, seed=seed)
    _assert_partition(data, split)
    train_ids, test_ids = set(split.train.frame[col]), set(split.test.frame[col])
    assert not train_ids & test_ids  # no held-out group leaks into train
    n_groups = len(train_ids | test_ids)
    assert len(test_ids) == min(max(1, round(fraction * n_groups)), n_groups - 1)
    # every row of a held-out group is in test
    assert len(split.test) == int(data.frame[col].isin(test_ids).sum())


def test_cold_split_ignores_row_order_and_validates():
    data = random_interactions(seed=4)
    shuffled = data.with_frame(data.frame.sample(frac=1.0, random_state=1))
    a = cold_split(data, by="user", fraction=0.2, seed=3)
    b = cold_split(shuffled, by="user", fraction=0.2, seed=3)
    assert set(a.test.frame["user_id"]) == set(b.test.frame["user_id"])
    assert len(set(a.test.frame["user_id"])) == round(0.2 * data.n_users)
    with pytest.raises(ValueError, match="fraction"):
        cold_split(data, fraction=1.0)
    one = data.with_frame(data.frame[data.frame["user_id"] == data.frame["user_id"].iloc[0]])
    with pytest.raises(DataError, match="at least 2 users"):
        cold_split(one, by="user", fraction=0.5)
