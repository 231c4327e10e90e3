"""Execute every notebook in notebooks/: they are product, not scratch (README)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ must hold at least the quickstart"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stripped_and_imports_only_sona(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs"), f"{path.name}: outputs must be stripped in git"
        assert cell.get("execution_count") is None, f"{path.name}: execution counts stripped"
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                root = (node.module or "").split(".")[0]
                assert root == "sona", (
                    f"{path.name}: imports {node.module}; notebooks import from sona")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] == "sona", (
                        f"{path.name}: imports {alias.name}; notebooks import from sona")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # run from the repo root, as a user would; the kernel inherits MPLBACKEND=Agg
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.get("outputs"), f"{path.name}: the last cell should show a result"
