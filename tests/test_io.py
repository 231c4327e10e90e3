from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from sona import io
from sona.errors import DataError

# --- read_table -------------------------------------------------------------------------------


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match=r"^file not found \(file .*absent\.csv\)$"):
        io.read_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=r"^expected a file, got a directory"):
        io.read_table(tmp_path)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"^file is empty \(file .*empty\.csv\)$"):
        io.read_table(tmp_path / "empty.csv")
    (tmp_path / "header.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^table has no rows \(file .*header\.tsv\)$"):
        io.read_table(tmp_path / "header.tsv")
    (tmp_path / "latin.csv").write_bytes(b"a,b\ncaf\xe9,1\n")
    with pytest.raises(DataError, match=r"cannot parse table: 'utf-8' codec .*latin\.csv"):
        io.read_table(tmp_path / "latin.csv")
    (tmp_path / "bad.pq").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot parse table: .*\(file .*bad\.pq\)"):
        io.read_table(tmp_path / "bad.pq")


def test_read_table_formats(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_csv(tmp_path / "t.tab", sep="\t", index=False)
    frame.to_csv(tmp_path / "t.txt", sep="|", index=False)
    for path, sep in [("t.parquet", None), ("t.tab", None), ("t.txt", "|")]:
        read = io.read_table(tmp_path / path, sep=sep)
        assert read["a"].tolist() == [1, 2] and read["b"].tolist() == ["x", "y"]


# --- read_atomic ------------------------------------------------------------------------------


def test_read_atomic_types(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\tgenres:token_seq\n"
                    "01\t2\t3.5\tA B\n7\tNA\t\t\n", encoding="utf-8")
    frame = io.read_atomic(path)
    assert list(frame.columns) == ["user_id", "item_id", "rating", "genres"]
    assert frame["user_id"].tolist() == ["01", "7"]  # tokens stay strings, zeros kept
    assert frame["item_id"].tolist() == ["2", "NA"]  # "NA" is a token, not missing
    assert frame["rating"].iloc[0] == 3.5 and np.isnan(frame["rating"].iloc[1])
    assert frame["genres"].iloc[0] == "A B" and pd.isna(frame["genres"].iloc[1])


@pytest.mark.parametrize(("content", "message"), [
    (b"user_id\titem_id:token\n1\t2\n", r"header field 'user_id' lacks ':type' \(file .*, row 0\)"),
    (b"", r"header field '' lacks ':type'"),
    (b"u:token\tr:float\n1\tgood\n", r"cannot parse atomic file: could not convert .*'good'"),
    (b"u:token\tv:token\n1\t2\n3\t4\t5\n", r"cannot parse atomic file: .*line 3"),
    (b"u:token\n\xff\n", r"not UTF-8 text \(file .*\)"),
    # regression: pandas used to turn the extra leading field into the index, shifting columns
    (b"u:token\tv:token\n1\t2\t3\n", r"first data row has more fields than the 2 in the header"),
])
def test_read_atomic_errors(tmp_path, content, message):
    path = tmp_path / "bad.inter"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        io.read_atomic(path)


def test_read_atomic_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"file not found \(file .*none\.inter\)"):
        io.read_atomic(tmp_path / "none.inter")


# --- yaml / json / md5 / zip ------------------------------------------------------------------


def test_yaml_and_json(tmp_path):
    io.write_yaml(tmp_path / "sub" / "c.yaml", {"b": 1, "a": [1, 2], "s": "yes"})
    assert (tmp_path / "sub" / "c.yaml").read_text(encoding="utf-8").startswith("b: 1\n")
    assert io.read_yaml(tmp_path / "sub" / "c.yaml") == {"b": 1, "a": [1, 2], "s": "yes"}
    (tmp_path / "bad.yaml").write_text("a: 1\nb: [1, 2\nc: 3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"invalid YAML: .*\(file .*bad\.yaml, row 3\)"):
        io.read_yaml(tmp_path / "bad.yaml")
    with pytest.raises(DataError, match="file not found"):
        io.read_yaml(tmp_path / "nope.yaml")
    io.write_json(tmp_path / "j.json", {"f": np.float32(1.5), "a": np.arange(3),
                                        "p": tmp_path / "x"})
    assert io.read_json(tmp_path / "j.json") == {"f": 1.5, "a": [0, 1, 2],
                                                 "p": str(tmp_path / "x")}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        io.write_json(tmp_path / "o.json", {"o": object()})


def test_md5sum_and_zip_extraction(tmp_path):
    payload = b"hello sona\n" * 1000
    (tmp_path / "f.bin").write_bytes(payload)
    assert io.md5sum(tmp_path / "f.bin", chunk=7) == hashlib.md5(payload).hexdigest()
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("pkg/data/x.txt", "x")
        zf.writestr("pkg/data/y.txt", "y")
        zf.writestr("pkg/other.txt", "o")
    written = io.extract_zip_members(tmp_path / "a.zip", "pkg/data/", tmp_path / "out")
    assert sorted(p.name for p in written) == ["x.txt", "y.txt"]
    assert (tmp_path / "out" / "y.txt").read_text(encoding="utf-8") == "y"


# --- model directories ------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [
    {"user": np.array([30, 10, 20]), "item": np.array([7, -3], dtype=np.int32)},
    {"user": np.array(["u2", "007", ""], dtype=object), "item": np.array(["b", "a"])},
])
def test_model_dir_round_trip(tmp_path, ids):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.array(["a", "bc"]),
              "n": np.int64(4)}
    io.save_model_dir(tmp_path / "m", config={"model": "ease", "l2": 0.5}, arrays=arrays,
                      ids=ids)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == \
        ["arrays.npz", "config.yaml", "ids.parquet"]
    config, loaded, loaded_ids = io.load_model_dir(tmp_path / "m")
    assert config == {"model": "ease", "l2": 0.5}
    assert loaded.keys() == arrays.keys()
    for name, arr in arrays.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == np.asarray(arr).dtype
    for kind, arr in ids.items():
        assert loaded_ids[kind].tolist() == np.asarray(arr).tolist()
        assert (loaded_ids[kind].dtype == np.int64) == (np.asarray(arr).dtype.kind in "iu")


def test_model_dir_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="array 'meta' has dtype object; refusing to pickle"):
        io.save_model_dir(tmp_path / "m", config={}, ids={},
                          arrays={"ok": np.ones(2), "meta": np.array([{"a": 1}], dtype=object)})
    assert not (tmp_path / "m" / "arrays.npz").exists()


def test_load_model_dir_names_the_missing_file(tmp_path):
    io.save_model_dir(tmp_path / "m", config={}, arrays={"w": np.ones(1)}, ids={})
    (tmp_path / "m" / "ids.parquet").unlink()
    with pytest.raises(DataError, match=r"model directory lacks ids\.parquet \(file .*m\)"):
        io.load_model_dir(tmp_path / "m")
