from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sona.data import Catalog, IdIndex, Interactions, load_interactions
from sona.errors import DataError, UnknownIdError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# --- load_interactions: each bad file names file, column and first offending row -------

@pytest.mark.parametrize(("name", "text", "columns", "expected"), [
    ("rating.csv", "u,i,r\n1,2,3\n1,3,x\n",
     {"user_id": "u", "item_id": "i", "rating": "r"},
     "non-numeric value 'x' (file {path}, column 'rating', row 1)"),
    ("misnamed.csv", "u,i\n1,2\n", {"user_id": "u", "item_id": "item"},
     "column 'item' not in file; found ['u', 'i'] (file {path}, column 'item')"),
    ("unmapped.csv", "u,i\n1,2\n", None,
     "missing column(s) ['user_id', 'item_id']; found ['u', 'i']; map them with columns= "
     "(file {path}, column 'user_id')"),
    ("nan_ids.csv", "user_id,item_id\n1,2\n2,3\n,3\n", None,
     "missing (NaN) id (file {path}, column 'user_id', row 2)"),
    ("nan_items.tsv", "user_id\titem_id\na\tx\nb\t\n", None,
     "missing (NaN) id (file {path}, column 'item_id', row 1)"),
    ("dups.csv", "user_id,item_id,rating\n1,2,5\n1,3,4\n1,2,5\n", None,
     "duplicate row (file {path}, row 2)"),
    ("float_ids.csv", "user_id,item_id\n1,2\n1,2.5\n", None,
     "non-integer numeric id (file {path}, column 'item_id', row 1)"),
    ("weights.csv", "user_id,item_id,weight\n1,2,1\n1,3,-0.5\n", None,
     "negative weight (file {path}, column 'weight', row 1)"),
    ("stamps.csv", "user_id,item_id,timestamp\n1,2,100\n1,3,soon\n", None,
     "non-numeric value 'soon' (file {path}, column 'timestamp', row 1)"),
    ("empty.csv", "", None, "file is empty (file {path})"),
    ("header_only.csv", "user_id,item_id,rating\n", None, "table has no rows (file {path})"),
])
def test_bad_files_raise_data_error_naming_the_place(tmp_path, name, text, columns, expected):
    path = _write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        load_interactions(path, columns=columns)
    assert str(err.value) == expected.format(path=path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"file not found \(file .*nowhere\.csv\)"):
        load_interactions(tmp_path / "nowhere.csv")


def test_bad_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match=r"cannot parse table: .*\(file .*broken\.parquet\)"):
        load_interactions(path)


def test_ragged_csv_names_the_line(tmp_path):
    path = _write(tmp_path / "ragged.csv", "user_id,item_id\n1,2\n1,3,4,5\n")
    with pytest.raises(DataError, match=r"cannot parse table: .*line 3.*\(file .*ragged\.csv\)"):
        load_interactions(path)


def test_unknown_canonical_name_in_mapping(tmp_path):
    path = _write(tmp_path / "x.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match=r"unknown canonical column\(s\) \['user'\]"):
        load_interactions(path, columns={"user": "u", "item_id": "i"})


# --- column mapping per format ------------------------------------------------------------

RAW = pd.DataFrame({
    "userId": ["u2", "u1", "u1"],
    "movieId": [30, 10, 20],
    "stars": [4.0, 3.5, 5.0],
    "when": [300, 100, 200],
})
MAPPING = {"user_id": "userId", "item_id": "movieId", "rating": "stars", "timestamp": "when"}


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_column_mapping_per_format(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        RAW.to_parquet(path, index=False)
    else:
        RAW.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    data = load_interactions(path, columns=MAPPING)
    assert data.frame["user_id"].tolist() == ["u2", "u1", "u1"]
    assert data.frame["item_id"].tolist() == [30, 10, 20]
    assert data.frame["rating"].tolist() == [4.0, 3.5, 5.0]
    assert data.frame["timestamp"].tolist() == [300.0, 100.0, 200.0]
    assert data.frame["weight"].tolist() == [1.0, 1.0, 1.0]
    assert data.users == IdIndex(["u1", "u2"]) and data.items == IdIndex([10, 20, 30])
    assert data.frame["user_idx"].tolist() == [1, 0, 0]
    assert data.source == str(path)


def test_explicit_separator(tmp_path):
    path = _write(tmp_path / "log.txt", "user_id;item_id\n1;2\n3;4\n")
    assert load_interactions(path, sep=";").frame["item_id"].tolist() == [2, 4]


# --- Interactions ---------------------------------------------------------------------------

def test_from_frame_defaults_and_numeric_string_ids():
    data = Interactions.from_frame(pd.DataFrame({"user_id": ["7", "3"], "item_id": [1.0, 2.0]}))
    assert data.frame["user_id"].tolist() == [7, 3] and data.users.is_integer
    assert data.frame["item_id"].dtype == np.int64
    assert np.isnan(data.frame["rating"]).all() and np.isnan(data.frame["timestamp"]).all()
    assert (data.n_users, data.n_items, len(data)) == (2, 2, 2)


def test_from_frame_rejects_empty_and_missing_columns():
    with pytest.raises(DataError, match="no interactions"):
        Interactions.from_frame(pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(DataError, match=r"missing column\(s\) \['item_id'\]"):
        Interactions.from_frame(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(DataError, match=r"empty id .*column 'user_id', row 1"):
        Interactions.from_frame(pd.DataFrame({"user_id": ["a", " "], "item_id": [1, 2]}))


def test_matrix_sums_repeated_pairs():
    data = Interactions.from_frame(pd.DataFrame({
        "user_id": [1, 1, 1, 2], "item_id": [5, 5, 6, 6],
        "rating": [4.0, 2.0, 3.0, 5.0], "timestamp": [1.0, 2.0, 3.0, 4.0],
        "weight": [1.0, 2.5, 1.0, 0.5],
    }))
    assert data.matrix().toarray().tolist() == [[3.5, 1.0], [0.0, 0.5]]
    assert data.matrix("rating").toarray().tolist() == [[6.0, 3.0], [0.0, 5.0]]
    assert data.matrix().nnz == 3


def test_matrix_of_missing_ratings_raises():
    data = Interactions.from_frame(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(DataError, match="column 'rating' has missing values"):
        data.matrix("rating")


def test_with_frame_reindexes_or_keeps_indices():
    data = Interactions.from_frame(pd.DataFrame({"user_id": [1, 2, 3], "item_id": [7, 8, 9]}))
    part = data.frame.iloc[1:]
    assert data.with_frame(part).users == IdIndex([2, 3])
    kept = data.with_frame(part, reindex=False)
    assert kept.users == data.users and kept.frame["user_idx"].tolist() == [1, 2]
    stranger = pd.DataFrame({"user_id": [4], "item_id": [7]})
    with pytest.raises(UnknownIdError, match="unknown user id"):
        data.with_frame(stranger, reindex=False)


def test_user_items():
    data = Interactions.from_frame(pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7]}))
    assert data.user_items() == {1: {7, 8}, 2: {7}}


# --- Catalog --------------------------------------------------------------------------------

def test_catalog_parses_genres_and_years():
    catalog = Catalog.from_frame(pd.DataFrame({
        "item_id": ["3", "1", "2"], "title": ["C", "A", None],
        "year": [1999.0, np.nan, "2001"], "genres": ["Drama|Comedy", "Action War", ["Noir"]],
        "director": ["x", "y", "z"],
    }))
    frame = catalog.frame
    assert frame["item_id"].tolist() == [3, 1, 2]
    assert frame["title"].tolist() == ["C", "A", ""]
    assert frame["year"].tolist()[0] == 1999 and pd.isna(frame["year"].iloc[1])
    assert frame["genres"].tolist() == [("Drama", "Comedy"), ("Action", "War"), ("Noir",)]
    assert frame["director"].tolist() == ["x", "y", "z"]  # extra columns are kept
    matrix, vocab = catalog.genre_matrix(IdIndex([1, 3, 99]))
    assert vocab == ["Action", "Comedy", "Drama", "Noir", "War"]
    assert matrix.toarray().tolist() == [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"item_id": [], "title": []}), "catalog is empty"),
    (pd.DataFrame({"item_id": [1]}), r"missing column\(s\) \['title'\] \(column 'title'\)"),
    (pd.DataFrame({"item_id": [1, 2, 1], "title": list("abc")}),
     r"duplicate item id \(column 'item_id', row 2\)"),
    (pd.DataFrame({"item_id": [1, None], "title": list("ab")}),
     r"missing \(NaN\) id \(column 'item_id', row 1\)"),
    (pd.DataFrame({"item_id": [1, 2], "title": list("ab"), "year": ["1990", "nineties"]}),
     r"non-numeric value 'nineties' \(column 'year', row 1\)"),
])
def test_catalog_validation(frame, message):
    with pytest.raises(DataError, match=message):
        Catalog.from_frame(frame)
