from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sona.data import IdIndex
from sona.errors import UnknownIdError

INT_IDS = st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40, unique=True)
# Left out: NUL (numpy's fixed-width str dtype drops a trailing "\x00", a known limitation;
# real id columns never hold NUL) and lone surrogates (not encodable text; pandas rejects them).
ID_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
STR_IDS = st.lists(st.text(ID_CHARS, min_size=1, max_size=8), min_size=1, max_size=40,
                   unique=True)


@settings(max_examples=80, deadline=None)
@given(ids=st.one_of(INT_IDS, STR_IDS), data=st.data())
def test_round_trip_ids_of_numbers(ids, data):
    index = IdIndex(ids)
    query = data.draw(st.lists(st.sampled_from(ids), max_size=30))
    numbers = index.numbers(query)
    assert numbers.dtype == np.int64
    assert index.ids(numbers).tolist() == query
    assert index.ids_array.tolist() == ids  # given order is index order
    assert [index.number(i) for i in ids] == list(range(len(ids)))


@settings(max_examples=50, deadline=None)
@given(ids=st.one_of(INT_IDS, STR_IDS))
def test_from_values_is_sorted_and_order_free(ids):
    index = IdIndex.from_values(ids * 2)  # repeats collapse
    assert index.ids_array.tolist() == sorted(ids)
    assert index == IdIndex.from_values(list(reversed(ids)))


def test_unknown_ids_raise_naming_them():
    index = IdIndex([10, 20, 30], kind="user")
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\): 40, 50") as err:
        index.numbers([10, 40, 50])
    assert err.value.ids == [40, 50]
    assert isinstance(err.value, KeyError)
    many = IdIndex(["a"], kind="item")
    with pytest.raises(UnknownIdError, match=r"'b0', .*'b9' and 2 more"):
        many.numbers([f"b{i}" for i in range(12)])
    with pytest.raises(UnknownIdError, match="unknown item id"):
        many.number("zz")


def test_missing_negative_maps_unknown_to_minus_one():
    index = IdIndex(["x", "y"])
    assert index.numbers(["y", "nope", "x"], missing="negative").tolist() == [1, -1, 0]
    assert index.ids(index.numbers(["nope", "x"], missing="negative")).tolist() == ["", "x"]


def test_duplicates_raise():
    with pytest.raises(ValueError, match=r"duplicate user ids: \[2\]"):
        IdIndex([1, 2, 2, 3], kind="user")
    with pytest.raises(ValueError, match="duplicate item ids"):
        IdIndex(["a", "b", "a"])


def test_equality_is_by_content():
    assert IdIndex([3, 1, 2]) == IdIndex(np.array([3, 1, 2], dtype=np.int32))
    assert hash(IdIndex([3, 1, 2])) == hash(IdIndex([3, 1, 2]))
    assert IdIndex([3, 1, 2]) != IdIndex([1, 2, 3])  # order is part of the content
    assert IdIndex([1, 2]) != IdIndex(["1", "2"])
    assert IdIndex(["a"]) != ["a"]


def test_pad_handling():
    ints, strs = IdIndex([5, 6]), IdIndex(["p", "q"])
    assert (ints.pad, strs.pad) == (-1, "")
    assert ints.ids(np.array([[1, -1], [0, 1]])).tolist() == [[6, -1], [5, 6]]
    assert strs.ids([-1, 0]).tolist() == ["", "p"]
    assert IdIndex([], kind="user").ids([-1, -1]).tolist() == [-1, -1]
    with pytest.raises(IndexError, match="out of range"):
        ints.ids([2])
    with pytest.raises(IndexError, match="out of range"):
        ints.ids([-2])


def test_ids_are_coerced_to_the_index_dtype():
    assert IdIndex([1, 2, 3]).numbers(["3", "1"]).tolist() == [2, 0]
    assert IdIndex(["1", "2"]).numbers([2]).tolist() == [1]
    assert IdIndex([7]).numbers(7).tolist() == [0]  # scalar -> batch of one
    assert IdIndex([7, 8]).numbers([[8], [7]]).tolist() == [1, 0]  # flattened
    with pytest.raises(TypeError, match="integers or strings"):
        IdIndex([1.5, 2.5])


def test_ids_array_is_read_only_and_membership_works():
    index = IdIndex(["a", "b"])
    with pytest.raises(ValueError):
        index.ids_array[0] = "z"
    assert "a" in index and "c" not in index
    assert len(index) == 2 and not index.is_integer and IdIndex([1]).is_integer
    assert index.id(1) == "b" and IdIndex([4, 9]).id(1) == 9


def test_one_non_integer_id_does_not_hide_the_integer_ones() -> None:
    """Regression (issue 10 review): an integer index given ``[5001, "5002", "zz"]`` used to
    fail the whole conversion, so every id of the batch looked unknown (a profile with one
    bad event lost all its events)."""
    index = IdIndex(np.array([5001, 5002, 5003]), kind="item")
    np.testing.assert_array_equal(index.numbers([5001, "5002", "zz"], missing="negative"),
                                  [0, 1, -1])
    with pytest.raises(UnknownIdError, match="'zz'"):
        index.numbers([5001, "zz"])


def test_id_beyond_int64_is_unknown_not_a_crash() -> None:
    # issue 13 (schemathesis): a 30-digit user id answered 500 (OverflowError)
    index = IdIndex(np.array([1, 2, 3]))
    assert index.numbers(["2", "9" * 30], missing="negative").tolist() == [1, -1]
    with pytest.raises(UnknownIdError):
        index.numbers(["9" * 30])
