"""Catalog items reach similar items and recommendations without a restart (issue 11).

Over the real BentoML server: a pipeline (ALS + MiniLM content + context, fixed weights) is
fitted on ML-100K and exported; the server's catalog is seeded from ML-100K. A title
created through the admin API joins the served pipeline as a cold item within seconds:
``/api/v1/recommendations/similar`` answers for it (by content, with Star Wars films among
its neighbours for a Star Wars-like text), it comes back from a Star Wars film's similar
items and from the recommendations of a Star Wars fan. After ``DELETE`` it is gone from
all of them, and similar items for it are a 404.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from serving_fixtures import call, write_config

from sona.data.sources import load_ml100k
from sona.db import sqlite_url
from sona.models.generators import GeneratorSpec
from sona.models.side import ItemSideData
from sona.pipeline import Pipeline, PipelineConfig
from sona.serving.auth import KeyStore
from sona.serving.export_onnx import export_model
from sona.serving.process import REPO_ROOT, ServerProcess

ML100K = REPO_ROOT / "datasets" / "ml-100k"
NAME = "catalog-recs"
CONTENT = "/api/v1/admin/catalog/content"
SIMILAR = "/api/v1/recommendations/similar"
#: Star Wars, The Empire Strikes Back, Return of the Jedi
STAR_WARS = {"50", "172", "181"}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (ML100K / "ml-100k.inter").exists(),
                                 reason="ML-100K not fetched")]


@dataclass(frozen=True)
class Served:
    url: str
    admin_key: str
    write_key: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ml = load_ml100k(ML100K)
    config = PipelineConfig(
        collaborative=GeneratorSpec("collaborative", "als", {"n_threads": 1}), graph=None,
        weights={"collaborative": 0.6, "content_based": 0.3, "context": 0.1}, mmr_lambda=1.0)
    pipeline = Pipeline(config, side=ItemSideData(ml.catalog, ml.kg, ml.links)).fit(
        ml.interactions)
    work = tmp_path_factory.mktemp("catalog-recs")
    export_model(pipeline, work / "models" / NAME / "1", name=NAME, version=1)
    database = str(work / "sona.db")
    path = write_config(work / "serving.yaml", work / "models", model_name=NAME,
                        database=database)
    keys = KeyStore(sqlite_url(database))
    admin = keys.create(["admin"], name="test-admin")[1]
    write = keys.create(["write"], name="test-write")[1]
    with ServerProcess(path) as proc:
        yield Served(proc.url, admin, write)


def _within(seconds: float, check: Any) -> bool:
    """Whether ``check()`` turns true within ``seconds`` (polled; no timing assertion)."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _similar(served: Served, item: str, limit: int = 10) -> tuple[int, list[str]]:
    status, body = call("POST", served.url + SIMILAR, {"content_id": item, "limit": limit})
    return status, [str(s["content_id"]) for s in body.get("similar_content", [])]


def _recs(served: Served, user: str, limit: int = 20) -> list[str]:
    status, body = call("POST", served.url + "/api/v1/recommendations",
                        {"user_id": user, "limit": limit})
    assert status == 200, body
    return [str(r["content_id"]) for r in body["recommendations"]]


def test_admin_title_reaches_similar_and_recommendations_then_delete_removes_it(
        served: Served) -> None:
    assert _similar(served, "50")[0] == 200
    status, made = call("POST", served.url + CONTENT, {
        "title": "Star Wars: The Rebel Moon Saga", "content_type": "movie",
        "platform": "netflix", "platform_content_id": "sw-rebel-1", "release_year": 1981,
        "overview": "An action, adventure and science fiction film from 1981. Sequel of "
                    "Star Wars; the rebels fight the Empire's Death Star with Luke "
                    "Skywalker, Han Solo and Princess Leia.",
        "genres": ["Sci-Fi", "Action", "Adventure"]}, served.admin_key)
    assert status == 201, made
    new_id = made["id"]
    # the first catalog write may wait for the item encoder's load (a background thread)
    assert _within(30.0, lambda: _similar(served, new_id)[0] == 200)
    status, own = _similar(served, new_id)
    assert new_id not in own and STAR_WARS & set(own), own  # content neighbours
    assert new_id in _similar(served, "50", limit=100)[1]

    fan = "star-wars-fan"
    now = datetime.now(UTC).timestamp()
    watched = ["50", "172", "181", "82", "96", "195", "89", "127"]
    events = [{"content_id": c, "timestamp": datetime.fromtimestamp(
        now - 600 + i, UTC).isoformat(), "completion_rate": 1.0, "rating": 5}
        for i, c in enumerate(watched)]
    status, body = call("POST", served.url + "/api/v1/profile/update",
                        {"user_id": fan, "viewing_events": events}, served.write_key)
    assert status == 200, body
    recs = _recs(served, fan)
    assert new_id in recs and not set(watched) & set(recs), recs

    assert call("DELETE", f"{served.url}{CONTENT}/{new_id}", key=served.admin_key)[0] == 200
    assert _within(10.0, lambda: _similar(served, new_id)[0] == 404)
    assert new_id not in _similar(served, "50", limit=100)[1]
    assert new_id not in _recs(served, fan, limit=50)
