"""``GET /api/v1/admin/audit`` on the real app (its Starlette route, dispatch, key store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serving_fixtures import Bundles, write_config
from starlette.testclient import TestClient

from sona.catalog.store import Actor
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.audit_http import PATH, audit_routes


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("audit-http")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml",
                                                        bundles.models_dir)))
    sona_app.audit.record("model_swapped", "model", "test-recs/2", user_id="key:9")
    sona_app.catalog.store.audit("content_deleted", "content", "1682", {"title": "x"},
                                 actor=Actor(user_id="carol"))
    yield sona_app
    sona_app.close()


@pytest.fixture(scope="module")
def client(app: SonaApp) -> TestClient:
    return TestClient(audit_routes(lambda: app))


def _key(app: SonaApp, scope: str) -> dict[str, str]:
    return {"X-API-Key": app.keys.create([scope], name=f"audit-{scope}")[1]}


def test_admin_queries_both_logs(app: SonaApp, client: TestClient) -> None:
    resp = client.get(PATH, headers=_key(app, "admin"))
    assert resp.status_code == 200
    body = resp.json()
    logs = {(e["log"], e["action"]) for e in body["entries"]}
    assert {("serving", "model_swapped"), ("catalog", "content_deleted")} <= logs
    assert body["count"] == len(body["entries"])
    carol = client.get(PATH, params={"actor": "carol"}, headers=_key(app, "admin")).json()
    assert [(e["resource_id"], e["details"]) for e in carol["entries"]] == [
        ("1682", {"title": "x"})]
    swaps = client.get(PATH, params={"action": "model_swapped", "since": "2020-01-01",
                                     "until": 4_102_444_800},
                       headers=_key(app, "admin")).json()
    assert [e["resource_id"] for e in swaps["entries"]] == ["test-recs/2"]


def test_needs_the_admin_scope(app: SonaApp, client: TestClient) -> None:
    assert client.get(PATH).status_code == 401
    assert client.get(PATH, headers=_key(app, "read")).status_code == 403


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"), ({"who": "me"}, "who")])
def test_bad_parameters_are_400_naming_them(app: SonaApp, client: TestClient,
                                             params: dict[str, str], field: str) -> None:
    resp = client.get(PATH, params=params, headers=_key(app, "admin"))
    assert resp.status_code == 400 and field in resp.json()["fields"]
