"""Where to watch over a real BentoML server on 127.0.0.1 (issue 11, item 2, slow tier).

A fresh server serves the hybrid bundle over a SQLite catalog seeded with offers for the
model's items: lists carry well-formed deep links, a platform filter still fills the list,
expired offers are never served, an admin availability write reaches the next request
without a restart, and bad filters are 400s naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from serving_fixtures import Bundles, call, write_config
from test_where_to_watch import EXPIRED, NETFLIX_US, catalog_items

from sona.catalog import CatalogStore
from sona.db import sqlite_url
from sona.serving.auth import KeyStore
from sona.serving.process import ServerProcess

pytestmark = pytest.mark.slow
RECS = "/api/v1/recommendations"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           bundles: Bundles) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("where-server")
    store = CatalogStore(sqlite_url(work / "catalog.db"))
    store.put_many(catalog_items())
    store.close()
    config = write_config(work / "serving.yaml", bundles.models_dir, version="3",
                          catalog={"encoder": "none"})
    admin = KeyStore(sqlite_url(work / "sona.db")).create(["admin"], name="admin")[1]
    with ServerProcess(config) as proc:
        yield proc.url, admin


def test_served_lists_carry_deep_links_and_honour_filters(served: tuple[str, str]) -> None:
    url, _ = served
    status, body = call("POST", url + RECS, {"user_id": "stranger", "limit": 8,
                                             "platforms": ["netflix"]})
    assert status == 200, body
    recs = body["recommendations"]
    assert len(recs) == 8 and {str(r["content_id"]) for r in recs} <= set(NETFLIX_US)
    for rec in recs:
        (o,) = rec["where_to_watch"]["offers"]
        assert o["region"] == "US" and o["platform"] == "netflix"
        assert o["deep_link_url"] == f"nflx://www.netflix.com/title/8{rec['content_id']}"
        assert urlsplit(o["web_url"]).netloc == "www.netflix.com"
    status, body = call("POST", url + RECS, {"user_id": "stranger", "platforms": ["hulu"]})
    assert status == 200 and body["recommendations"] == []  # the only Hulu offer expired


def test_admin_availability_write_reaches_the_next_request(served: tuple[str, str]) -> None:
    url, admin = served
    req = {"user_id": "stranger", "limit": 5, "platforms": ["youtube"], "region": "gb"}
    assert call("POST", url + RECS, req)[1]["recommendations"] == []
    status, _ = call("PUT", f"{url}/api/v1/admin/catalog/content/{EXPIRED}/availability",
                     {"platform": "youtube", "regions": ["GB"], "rental_price": 3.99,
                      "currency": "GBP"}, admin)
    assert status == 200
    status, body = call("POST", url + RECS, req)
    assert status == 200 and [str(r["content_id"]) for r in body["recommendations"]] == [
        EXPIRED]
    (o,) = body["recommendations"][0]["where_to_watch"]["offers"]
    assert (o["availability_type"], o["price_cents"], o["region"]) == ("rental", 399, "GB")


@pytest.mark.parametrize(("body", "field"), [
    ({"platforms": ["netflux"]}, "platforms"), ({"region": "USA"}, "region"),
    ({"available_now": "sometimes"}, "available_now")])
def test_bad_filters_are_400_naming_the_field(served: tuple[str, str], body: dict,
                                              field: str) -> None:
    status, reply = call("POST", served[0] + RECS, {"user_id": "u", **body})
    assert status == 400 and field in str(reply), reply
