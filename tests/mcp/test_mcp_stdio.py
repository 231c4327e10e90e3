"""``sona mcp`` over STDIO with the SDK's own client, in a subprocess, on real data (issue 15
item 5): an EASE bundle fitted on all of ML-100K, the ML-100K search engine (MiniLM), a
catalog store with one title that has offers, and the sync service."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sona.catalog.schema import Availability, ContentItem
from sona.catalog.store import CatalogStore
from sona.data.sources import MovieLens
from sona.db import sqlite_url
from sona.ingest.movielens import movielens_items, seed_catalog
from sona.serving.process import REPO_ROOT
from tests.sync.live import export_ml100k, write_config

pytestmark = pytest.mark.slow

TOOLS = {"semantic_search", "get_recommendations", "similar_content",
         "explain_recommendation", "get_content_details", "check_availability",
         "watchlist_add", "watchlist_remove", "watchlist_list", "list_devices",
         "list_experiments", "experiment_report"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, ml100k: MovieLens) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("mcp")
    export_ml100k(ml100k, work / "models")
    config = write_config(work / "serving.yaml", work / "models")
    store = CatalogStore(sqlite_url(work / "catalog.db"))
    seed_catalog(store, movielens_items(ml100k))  # the one item space: MovieLens ids first
    item = store.add(ContentItem(title="The Night Garden", release_year=2024, availability=[
        Availability(platform="netflix", availability_type="subscription", regions=["US", "CA"],
                     deep_link_url="nflx://www.netflix.com/title/81234567",
                     web_url="https://www.netflix.com/title/81234567")]))
    store.close()
    return config, item.canonical_id


def _session(config: Path, body: Callable[[Any], Awaitable[Any]]) -> Any:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=str(Path(sys.executable).with_name("sona")), args=["mcp", "--config",
                                                                    str(config)],
        cwd=str(REPO_ROOT), env={"HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1",
                                 "MLFLOW_DISABLE_TELEMETRY": "true",
                                 "PATH": os.environ.get("PATH", "")})

    async def main() -> Any:
        async with Client(params, read_timeout_seconds=180) as client:
            return await body(client)

    # a fresh thread has no running event loop, whatever an earlier test left on this one
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content.get("result", result.structured_content))


def _error(result: Any) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content)


def test_tools_over_stdio(setup: tuple[Path, str]) -> None:
    config, catalog_id = setup

    async def body(client: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": {t.name for t in (await client.list_tools()).tools}}
        out["search"] = _data(await client.call_tool("semantic_search",
                                                     {"query": "Star Wars", "limit": 5}))
        out["bad_limit"] = _error(await client.call_tool("semantic_search",
                                                         {"query": "x", "limit": 0}))
        out["bad_user"] = _error(await client.call_tool("get_recommendations",
                                                        {"user_id": ""}))
        out["recs"] = _data(await client.call_tool("get_recommendations", {
            "user_id": "1", "limit": 5, "time_of_day": "evening", "device_type": "tv"}))
        top = str(out["recs"]["recommendations"][0]["content_id"])
        out["explain"] = _data(await client.call_tool("explain_recommendation", {
            "user_id": "1", "content_id": top, "time_of_day": "evening",
            "device_type": "tv"}))
        out["similar"] = _data(await client.call_tool("similar_content",
                                                      {"content_id": "50", "limit": 5}))
        out["details"] = _data(await client.call_tool("get_content_details",
                                                      {"content_id": "50"}))
        out["unknown"] = _error(await client.call_tool("get_content_details",
                                                       {"content_id": "no-such-film"}))
        out["avail_none"] = _data(await client.call_tool("check_availability",
                                                         {"content_id": "50"}))
        out["avail"] = _data(await client.call_tool("check_availability", {
            "content_id": catalog_id, "region": "us"}))
        out["add"] = _data(await client.call_tool("watchlist_add",
                                                  {"user_id": "1", "content_id": "50"}))
        out["devices"] = _data(await client.call_tool("list_devices", {"user_id": "1"}))
        out["remove"] = _data(await client.call_tool("watchlist_remove",
                                                     {"user_id": "1", "content_id": "50"}))
        out["remove_again"] = _error(await client.call_tool(
            "watchlist_remove", {"user_id": "1", "content_id": "50"}))
        out["experiments"] = _data(await client.call_tool("list_experiments", {}))
        out["report"] = _error(await client.call_tool("experiment_report",
                                                      {"experiment_id": "nope"}))
        out["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
        item = await client.read_resource("content://item/50")
        out["item"] = json.loads(item.contents[0].text)
        return out

    out = _session(config, body)
    assert len(out["tools"]) >= 10 and TOOLS <= out["tools"]
    titles = [r["title"] for r in out["search"]["results"]]
    assert titles[0] == "Star Wars", titles
    assert "limit" in out["bad_limit"] and "user_id" in out["bad_user"]

    recs = out["recs"]
    assert recs["strategy"] == "personalized" and len(recs["recommendations"]) == 5
    assert all(r["title"] for r in recs["recommendations"])
    ex = out["explain"]
    assert ex["rank"] == 1 and ex["context"] == {"time_of_day": "evening", "device_type": "tv"}
    applied = [s for s in ex["sources"] if s["applies"]]
    assert abs(sum(s["weight"] for s in applied) - 1.0) < 1e-5
    blended = sum(s["contribution"] for s in ex["sources"])
    assert blended * (1 + ex["lora_boost"] * ex["lora_term"]) == pytest.approx(ex["score"],
                                                                               abs=1e-5)
    assert set(ex["based_on"]) == {s["source"] for s in ex["sources"] if s["contribution"] > 0}

    sim = out["similar"]
    assert sim["title"] == "Star Wars" and len(sim["similar_content"]) == 5
    assert all(s["content_id"] != 50 and s["title"] for s in sim["similar_content"])
    assert out["details"]["title"] == "Star Wars"
    assert out["details"]["release_year"] == 1977 and out["details"]["recommendable"]
    assert "unknown content id" in out["unknown"]

    assert out["avail_none"]["has_platform_data"] is False
    assert out["avail_none"]["message"].startswith("No platform data")
    offer = out["avail"]["offers"][0]
    assert out["avail"]["available"] and offer["platform"] == "netflix"
    assert offer["deep_link_url"] == "nflx://www.netflix.com/title/81234567"

    assert out["add"]["watchlist"] == [{"content_id": "50", "title": "Star Wars"}]
    assert [d["device_id"] for d in out["devices"]["devices"]] == ["mcp-assistant"]
    assert out["remove"]["watchlist"] == [] and "not on the watchlist" in out["remove_again"]
    assert out["experiments"] == {"experiments": [], "count": 0}
    assert "not_found" in out["report"] or "unknown" in out["report"]
    assert "content://catalog" in out["resources"]
    assert out["item"]["title"] == "Star Wars"
