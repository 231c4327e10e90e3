"""The package import graph: edges read from source, cycles found, and sona's own layering."""

from __future__ import annotations

from pathlib import Path

from sona.testing.layering import find_cycles, import_edges, importers, package_of

ROOT = Path(__file__).resolve().parents[2] / "sona"



def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "sona" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "sona"


def test_package_of_names_the_first_level_part() -> None:
    assert package_of("sona.ab.report") == "sona.ab"
    assert package_of("sona.io") == "sona.io"
    assert package_of("sona") is None
    assert package_of("numpy.linalg") is None


def test_edges_cover_lazy_relative_and_from_package_imports(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "__init__.py": "",
        "io.py": "",
        "low/__init__.py": "from . import core\n",
        "low/core.py": "from sona import io\n",
        "high/__init__.py": "",
        "high/app.py": "def f() -> None:\n    from sona.low.core import x\n",
    })
    edges = {(e.source, e.target, e.module) for e in import_edges(root)}
    assert edges == {("sona.low", "sona.io", "sona.low.core"),
                     ("sona.high", "sona.low", "sona.high.app")}
    assert find_cycles(import_edges(root)) == []


def test_cycle_is_found_and_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "from sona.b import y\n",
        "b/__init__.py": "def g() -> None:\n    from sona.c import z\n",
        "c/__init__.py": "from sona.a import x\n",
        "d/__init__.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from sona.a import x\nfrom sona.c import z\n"),
    })
    edges = import_edges(root)
    assert ("sona.d", "sona.a") not in {(e.source, e.target) for e in edges}
    assert find_cycles(edges) == [["sona.a", "sona.b", "sona.c"]]


def test_sona_has_no_package_cycles() -> None:
    # issue 10 item 8: the registry names the pipeline by class path, not by import
    assert find_cycles(import_edges(ROOT)) == []


def test_importers_match_modules_and_names_from_them(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "import mlflow.tracking\n",
        "b.py": "def f() -> None:\n    from sqlalchemy import create_engine, text\n",
        "c.py": "from sqlalchemy import text\nimport mlflowx\n",
    })
    assert importers(root, "mlflow") == ["sona.a"]
    assert importers(root, "sqlalchemy.create_engine") == ["sona.b"]


def test_one_tracking_module_and_one_engine_factory() -> None:
    # STYLE §4 and §11: only sona.experiments.tracking imports mlflow; only sona.db
    # creates SQLAlchemy engines (every store calls sona.db.make_engine)
    assert importers(ROOT, "mlflow") == ["sona.experiments.tracking"]
    assert importers(ROOT, "sqlalchemy.create_engine") == ["sona.db"]
