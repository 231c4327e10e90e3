"""One routing system (issue 13): every route the service answers is in its OpenAPI 3.1 document.

The route table is BentoML's real one (``Sona.to_asgi``: its system routes, the APIs and the
Starlette apps it mounts), built without starting a server, so a route someone adds without
a declaration fails here by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from sona.docs import service_class
from sona.serving.asgi import parse_query
from sona.serving.routing import (
    Operation,
    api_route,
    declared_routes,
    openapi_document,
    service_document,
)


@pytest.fixture(scope="module")
def service() -> Any:
    return service_class()


@pytest.fixture(scope="module")
def document(service: Any) -> dict[str, Any]:
    return service_document(service)


def _live_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(METHOD, path) of every HTTP route in a Starlette route table, mounts included."""
    for route in routes:
        path = prefix + getattr(route, "path", "")
        if isinstance(route, WebSocketRoute):
            continue
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner:
                yield from _live_routes(inner, path)
            else:  # a file app (StaticFiles): GET <mount>/{path}
                yield "GET", path + "/{path}"
        elif isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, path


def test_every_mounted_route_is_in_the_document(service: Any, document: dict[str, Any]) -> None:
    app = service.to_asgi(is_main=True)  # BentoML's own route table; no server is started
    live = sorted(set(_live_routes(app.routes)))
    assert len(live) > 50  # APIs, system routes and every mounted app were walked
    missing = [f"{m} {p}" for m, p in live
               if m.lower() not in document["paths"].get(p, {})]
    assert missing == [], f"routes without a declaration in the OpenAPI document: {missing}"
    # and nothing is documented that the service does not answer
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert documented - set(live) == set()


def test_document_is_valid_openapi_3_1_with_error_bodies(document: dict[str, Any]) -> None:
    validate(document)  # openapi-spec-validator picks the 3.1 rules from "openapi"
    assert document["openapi"] == "3.1.0"
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    ops = [(p, m, op) for p, item in document["paths"].items() for m, op in item.items()]
    for path, method, op in ops:
        responses = op["responses"]
        assert {"413", "429"} <= set(responses), (method, path)
        if "requestBody" in op:
            assert {"400", "415"} <= set(responses), (method, path)
            assert responses["415"]["content"]["application/json"]["schema"] == error_ref
        if "x-sona-scope" in op:
            assert {"401", "403"} <= set(responses) and op["security"], (method, path)
    # mutating routes need credentials (API key or token; webhooks: a signature); the open
    # ones are the sign-in entry points and POSTs that read (a new one must be added here)
    open_writes = {p for p, m, op in ops if m in ("post", "put", "patch", "delete")
                   and "security" not in op}
    assert open_writes <= {
        "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/register",
        "/api/v1/personalization/score", "/api/v1/ping", "/api/v1/recommendations",
        "/api/v1/recommendations/batch", "/api/v1/recommendations/similar",
        "/api/v1/search", "/api/v1/search/click", "/api/v1/search/keyword",
        "/api/v1/search/vector"}, open_writes


def test_models_become_parameters_and_bodies(document: dict[str, Any]) -> None:
    auto = document["paths"]["/api/v1/search/autocomplete"]["get"]
    params = {p["name"]: p for p in auto["parameters"]}
    assert params["q"]["required"] and params["q"]["schema"]["minLength"] == 1
    assert params["limit"]["schema"] == {"default": 10, "maximum": 50, "minimum": 1,
                                         "type": "integer", "description": "most suggestions"}
    history = document["paths"]["/api/v1/admin/search/ranking/history/{version}"]["get"]
    assert history["parameters"][0]["schema"]["type"] == "integer"
    recs = document["paths"]["/api/v1/recommendations"]["post"]
    ref = recs["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema["required"] == ["user_id"] and schema["additionalProperties"] is False
    assert document["paths"]["/docs.json"]["get"]["responses"]["200"]
    assert document["paths"]["/api/v1/admin/catalog/content"]["post"]["responses"]["201"]


class _Query(BaseModel):
    genres: list[str] = Field(default_factory=list)
    limit: int = Field(10, ge=1)


def test_undeclared_route_and_duplicate_methods_are_refused() -> None:
    async def ok(_: Request) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(LookupError, match="/plain"):
        list(declared_routes([Route("/plain", ok)]))
    with pytest.raises(ValueError, match="declare each method once"):
        api_route("/x", ok, Operation("GET", "a"), Operation("GET", "b"))
    routes = [api_route("/x", ok, Operation("GET", "a", operation_id="same")),
              api_route("/y", ok, Operation("GET", "b", operation_id="same"))]
    with pytest.raises(ValueError, match="declared twice"):
        openapi_document(list(declared_routes(routes)))


def test_parse_query_validates_against_the_declared_model() -> None:
    async def endpoint(request: Request) -> JSONResponse:
        query = parse_query(request, _Query)
        return query if isinstance(query, JSONResponse) else JSONResponse(query.model_dump())

    client = TestClient(Starlette(routes=[api_route("/q", endpoint, Operation(
        "GET", "q", query=_Query))]))
    assert client.get("/q?genres=a&genres=b&limit=3").json() == {"genres": ["a", "b"],
                                                                 "limit": 3}
    bad = client.get("/q?limit=0")
    assert bad.status_code == 400
    assert bad.json()["fields"] == ["limit"] and bad.json()["error"] == "validation_error"
    assert client.get("/q?limit=x").json()["fields"] == ["limit"]
