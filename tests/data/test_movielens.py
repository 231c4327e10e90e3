from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sona.data.sources import load_ml100k, verify_ml100k
from sona.data.sources.movielens import MD5
from sona.errors import DataError

pytestmark = pytest.mark.realdata


def test_interactions_shape(ml100k):
    data = ml100k.interactions
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1_682)
    assert sorted(data.frame["rating"].unique().tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert not data.frame["timestamp"].isna().any()
    assert (data.frame["weight"] == 1.0).all()
    assert data.frame["user_id"].dtype == np.int64 and data.frame["item_id"].dtype == np.int64
    assert data.users.ids_array.tolist() == list(range(1, 944))


def test_checksums_verified(ml100k):
    assert ml100k.checksums == MD5
    assert ml100k.checksums["ml-100k.inter"] == "a8a8c3f165aedc53f63b5dc0a0463b14"


def test_catalog_genres_parsed(ml100k):
    catalog = ml100k.catalog.frame
    assert len(catalog) == 1_682
    first = catalog.iloc[0]
    assert (first["item_id"], first["title"], first["year"]) == (1, "Toy Story", 1995)
    assert first["genres"] == ("Animation", "Children's", "Comedy")
    counts = Counter(g for genres in catalog["genres"] for g in genres)
    assert len(counts) == 19  # the 18 ML-100K genres plus "unknown"
    assert (counts["Drama"], counts["Comedy"], counts["Film-Noir"], counts["unknown"]) == \
        (725, 505, 24, 2)
    matrix, vocab = ml100k.catalog.genre_matrix(ml100k.interactions.items)
    assert matrix.shape == (1_682, 19) and matrix.sum() == sum(counts.values())
    assert int(catalog["year"].isna().sum()) == 2  # two titles lack a release year


def test_users_kg_and_links(ml100k):
    assert len(ml100k.users) == 943
    assert set(ml100k.users.columns) >= {"user_id", "age", "gender", "occupation"}
    assert len(ml100k.kg) == 91_631
    assert list(ml100k.kg.columns) == ["head_id", "relation_id", "tail_id"]
    assert ml100k.links["item_id"].isin(ml100k.catalog.frame["item_id"]).all()


def _copy(ml100k, tmp_path):
    dest = tmp_path / "ml-100k"
    shutil.copytree(Path(ml100k.interactions.source).parent, dest)
    return dest


def test_corrupted_copy_fails_md5(ml100k, tmp_path):
    folder = _copy(ml100k, tmp_path)
    inter = folder / "ml-100k.inter"
    raw = bytearray(inter.read_bytes())
    raw[-2] = ord("9") if raw[-2] != ord("9") else ord("8")  # one digit of the last timestamp
    inter.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"md5 mismatch: expected a8a8c3f165aedc53f63b5dc0a0463b14"
                                        r", got [0-9a-f]{32} \(file .*ml-100k\.inter\)"):
        verify_ml100k(folder)
    with pytest.raises(DataError, match="md5 mismatch"):
        load_ml100k(folder)


def test_missing_file_is_named(ml100k, tmp_path):
    folder = _copy(ml100k, tmp_path)
    (folder / "ml-100k.kg").unlink()
    with pytest.raises(DataError, match=r"MovieLens file missing.*\(file .*ml-100k\.kg\)"):
        verify_ml100k(folder)
