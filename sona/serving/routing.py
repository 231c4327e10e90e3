"""One routing system, one contract: every HTTP route declares its operation here.

Every route the service answers carries an :class:`Operation`: method, summary, the pydantic
models of its JSON body, query and path parameters and of its response, the API-key scope it
needs and the error statuses it can answer. :func:`openapi_document` walks the service's
routes (its BentoML APIs, the Starlette apps it mounts and BentoML's own system routes) and
turns those declarations into one OpenAPI 3.1 document, served at ``/openapi.json`` and
``/docs.json``; ``tests/serving/test_routing.py`` fails when a mounted route has no
declaration, so the document cannot fall behind the code.

How a route declares itself:

* a Starlette route in a ``*_http.py`` module: :func:`api_route` instead of ``Route``,
  one :class:`Operation` per method (``api_route(path, endpoint, Operation("GET", ...),
  Operation("DELETE", ...))``); a file mount: :func:`api_mount`;
* a BentoML API in ``serving/service.py``: ``@declare(response=..., errors=...)`` under
  ``@bentoml.api``; the body model is the method's own input model.

Declarations cost nothing per request: they are attributes read only when the document is
generated (once per process), so the hot paths (issue 12) stay as they are. Handlers still
parse with :func:`~sona.serving.asgi.parse_body` / :func:`~sona.serving.asgi.parse_query`
against the same models they declare, so the document and the validation agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Mount, Route

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Scope = Literal["read", "write", "admin"]
F = TypeVar("F", bound=Callable[..., Any])

#: statuses every operation can answer whatever its handler does: an over-limit body (413,
#: checked before routing), a rate limit (429), a request running over the timeout (504)
COMMON_ERRORS: tuple[int, ...] = (413, 429, 504)
#: what each error status means, for the document's response descriptions
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "invalid request: `fields` names each bad body, query or path field",
    401: "missing or invalid credentials",
    403: "the credentials lack the scope this route needs",
    404: "unknown id",
    405: "method not allowed on this route",
    409: "conflicts with the current state (exists already, wrong status)",
    413: "request body over the configured limit (checked before it is read)",
    415: "request body is not JSON",
    422: "well-formed but unprocessable request",
    429: "rate limit exceeded; see Retry-After",
    503: "a component this route needs is not available; see Retry-After when given",
    504: "request took longer than the service timeout",
}
#: the prefix of a file mount's path parameter in the document
FILE_PARAM = "path"


class ErrorBody(BaseModel):
    """SONA's error body: every 4xx/5xx answer of every route has this shape."""

    model_config = ConfigDict(extra="allow", title="ErrorBody")

    error: str = Field(description="stable machine-readable slug, e.g. `validation_error`")
    message: str = Field(description="one line a client can show; names the offending field")
    fields: list[str] | None = Field(
        default=None, description="the body, query or path fields that were rejected")


class AnyObject(BaseModel):
    """A JSON object whose keys are not fixed (e.g. a webhook event)."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, slots=True)
class Operation:
    """The contract of one method on one route.

    Args:
        method: HTTP method.
        summary: one line saying what the operation does.
        operation_id: unique id (defaults to ``method_path``); also the request metric label.
        body: model of the JSON request body (None: no body).
        query: model of the query parameters (each field one parameter).
        path: model of the path parameters (default: each ``{name}`` a string).
        response: model of the success body (None: a free-form JSON object, or text for
            non-JSON ``media_types``).
        status: success status.
        scope: API-key scope the route requires (None: open).
        errors: error statuses besides those implied (400 with a body/query/path, 401/403
            with a scope, 415 with a body, :data:`COMMON_ERRORS` always).
        media_types: media types of the success body.
        error_media_types: media types of the error bodies (JSON unless a file mount).
        security: ``"api_key"`` (scope checked by ``require_scope``) or ``"signature"``
            (an HMAC header, webhooks); implied ``"api_key"`` when ``scope`` is set.
        tag: group in the document (defaults to the declaring module's area).
    """

    method: HttpMethod
    summary: str
    operation_id: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    scope: Scope | None = None
    errors: tuple[int, ...] = ()
    media_types: tuple[str, ...] = ("application/json",)
    error_media_types: tuple[str, ...] = ("application/json",)
    security: Literal["api_key", "signature"] | None = None
    tag: str = ""

    def error_statuses(self, path: str) -> list[int]:
        """Every error status this operation can answer on ``path``."""
        found = set(self.errors) | set(COMMON_ERRORS)
        if self.body is not None or self.query is not None or "{" in path:
            found.add(400)
        if self.body is not None:
            found.add(415)
        if self.scope is not None or self.security is not None:
            found.update((401, 403))
        return sorted(found)


@dataclass(frozen=True, slots=True)
class Declared:
    """An operation bound to its path (what the document lists)."""

    path: str
    operation: Operation


def api_route(path: str, endpoint: Callable[..., Any], *operations: Operation,
              name: str | None = None) -> Route:
    """A Starlette ``Route`` answering exactly the declared methods, carrying their contract.

    Args:
        path: route path (Starlette syntax, ``{name}`` parameters).
        endpoint: the request handler (it may branch on ``request.method``).
        operations: one per method.

    Raises:
        ValueError: no operation, or one method declared twice.
    """
    methods = [op.method for op in operations]
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"{path}: declare each method once (got {methods})")
    route = Route(path, endpoint, methods=methods, name=name)
    route.sona_operations = operations  # type: ignore[attr-defined]
    return route


def api_mount(path: str, app: Any, operation: Operation, *, name: str | None = None) -> Mount:
    """A Starlette ``Mount`` of a file app (e.g. ``StaticFiles``), declared as
    ``GET {path}/{path}``."""
    mount = Mount(path, app=app, name=name)
    mount.sona_operations = (operation,)  # type: ignore[attr-defined]
    return mount


def declare(*, response: type[BaseModel] | None = None, summary: str = "",
            scope: Scope | None = None, errors: Sequence[int] = (), status: int = 200,
            media_types: tuple[str, ...] = ("application/json",),
            tag: str = "") -> Callable[[F], F]:
    """Attach the contract of a BentoML API method (put it under ``@bentoml.api``).

    The method's body model is its BentoML input model, read when the document is built;
    ``summary`` defaults to the first line of the method's docstring.
    """

    def mark(func: F) -> F:
        doc = (func.__doc__ or "").strip().splitlines()
        func.sona_operation = Operation(  # type: ignore[attr-defined]
            "POST", summary or (doc[0] if doc else func.__name__), operation_id=func.__name__,
            response=response, scope=scope, errors=tuple(errors), status=status,
            media_types=media_types, tag=tag)
        return func

    return mark


def declared_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[Declared]:
    """The declared operations of a Starlette route table, recursing into plain mounts.

    Raises:
        LookupError: a route answers HTTP without a declaration (names it).
    """
    for route in routes:
        ops: tuple[Operation, ...] | None = getattr(route, "sona_operations", None)
        path = prefix + getattr(route, "path", "")
        if ops is not None:
            file_mount = isinstance(route, Mount)
            for op in ops:
                yield Declared(f"{path}/{{{FILE_PARAM}}}" if file_mount else path, op)
        elif isinstance(route, Mount) and (inner := getattr(route.app, "routes", None)):
            yield from declared_routes(inner, path)
        elif isinstance(route, Route):
            raise LookupError(f"route {path} ({', '.join(sorted(route.methods or ()))}) has "
                              "no declared operation: build it with sona.serving.routing."
                              "api_route")


def service_operations(service: Any) -> list[Declared]:
    """Every declared operation of a BentoML service class: its APIs, its mounted apps and
    BentoML's own system routes (:data:`SYSTEM_OPERATIONS`).

    Raises:
        LookupError: an API method or a mounted route has no declaration.
    """
    found: list[Declared] = []
    for name, api in service.apis.items():
        op: Operation | None = getattr(api.func, "sona_operation", None)
        if op is None:
            raise LookupError(f"API {name} ({api.route}) has no declared operation: add "
                              "@declare(...) under @bentoml.api")
        fields = getattr(api.input_spec, "model_fields", {})
        body = api.input_spec if fields else None
        found.append(Declared(api.route, replace(op, body=body)))
    for app, prefix, _name in service.mount_apps:
        found.extend(declared_routes(getattr(app, "routes", []), prefix.rstrip("/")))
    found.extend(SYSTEM_OPERATIONS)
    return found


def _path_params(path: str) -> list[str]:
    return [p.split(":", 1)[0] for p in re.findall(r"{([^}]+)}", path)]


@dataclass
class _Builder:
    """Collects the models of all operations, then emits one components section."""

    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = \
        field(default_factory=list)

    def add(self, model: type[BaseModel] | None,
            mode: Literal["validation", "serialization"]) -> None:
        if model is not None and (model, mode) not in self.models:
            self.models.append((model, mode))

    def schemas(self) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
        refs, top = models_json_schema(self.models, ref_template="#/components/schemas/{model}")
        defs: dict[str, Any] = top.get("$defs", {})
        # OPENAPI_EXTRA: rules a model states only in this document (e.g. a cross-field
        # if/then), kept out of its pydantic schema, which BentoML's client and `bentoml
        # build` also read and cannot take (an anyOf branch is read as the properties;
        # its Schema class refuses "if")
        for key in self.models:
            extra = getattr(key[0], "OPENAPI_EXTRA", None)
            if extra and "$ref" in refs[key]:
                defs[refs[key]["$ref"].rsplit("/", 1)[-1]].update(extra)
        return refs, defs


def _parameters(where: Literal["query", "path"], schema: dict[str, Any],
                defs: dict[str, Any]) -> list[dict[str, Any]]:
    target = defs[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema
    required = set(target.get("required", []))
    out = []
    for name, prop in target.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": where,
                                 "required": where == "path" or name in required,
                                 "schema": {k: v for k, v in prop.items() if k != "title"}}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def _content(media_types: Sequence[str], schema: dict[str, Any]) -> dict[str, Any]:
    return {m: {"schema": schema if "json" in m else {"type": "string"}} for m in media_types}


def openapi_document(operations: Sequence[Declared], *, title: str = "SONA API",
                     version: str = "", description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (see :func:`service_operations`).

    Request models are described as they validate, response models as they serialise;
    every error response is :class:`ErrorBody`.

    Raises:
        ValueError: two operations share a method and path, or an operation id.
    """
    builder = _Builder()
    builder.add(ErrorBody, "serialization")
    for d in operations:
        for model in (d.operation.body, d.operation.query, d.operation.path):
            builder.add(model, "validation")
        builder.add(d.operation.response, "serialization")
    refs, defs = builder.schemas()

    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for d in operations:
        op, method = d.operation, d.operation.method.lower()
        oas_path = re.sub(r"{([^}:]+)(:[^}]+)?}", r"{\1}", d.path)
        entry = paths.setdefault(oas_path, {})
        if method in entry:
            raise ValueError(f"{d.operation.method} {oas_path} is declared twice")
        op_id = op.operation_id or re.sub(r"[^A-Za-z0-9]+", "_", f"{method}{oas_path}").strip("_")
        if op_id in seen_ids:
            raise ValueError(f"operation id {op_id!r} is declared twice")
        seen_ids.add(op_id)
        out: dict[str, Any] = {"operationId": op_id, "summary": op.summary}
        if op.tag:
            out["tags"] = [op.tag]
        params: list[dict[str, Any]] = []
        if op.path is not None:
            params += _parameters("path", refs[(op.path, "validation")], defs)
        declared = {p["name"] for p in params}
        params += [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                   for n in _path_params(oas_path) if n not in declared]
        if op.query is not None:
            params += _parameters("query", refs[(op.query, "validation")], defs)
        if params:
            out["parameters"] = params
        if op.body is not None:
            out["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        success = refs[(op.response, "serialization")] if op.response is not None \
            else {"type": "object"}
        responses: dict[str, Any] = {str(op.status): {
            "description": op.summary, "content": _content(op.media_types, success)}}
        error_ref = refs[(ErrorBody, "serialization")]
        for status in op.error_statuses(oas_path):
            responses[str(status)] = {"description": ERROR_DESCRIPTIONS.get(status, "error"),
                                      "content": _content(op.error_media_types, error_ref)}
        out["responses"] = responses
        if op.security == "signature":
            out["security"] = [{"webhookSignature": []}]
        elif op.scope is not None or op.security == "api_key":
            out["security"] = [{"bearerKey": []}, {"apiKeyHeader": []}]
            out["x-sona-scope"] = op.scope
        entry[method] = out
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or "0", "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(defs.items())), "securitySchemes": {
            "bearerKey": {"type": "http", "scheme": "bearer",
                          "description": "an API key `sk_...` (`sona keys create`)"},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "webhookSignature": {"type": "apiKey", "in": "header",
                                 "name": "X-Hub-Signature-256",
                                 "description": "sha256=<hex HMAC-SHA256 of the body>"}}},
    }


def service_document(service: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a BentoML service class (what ``/openapi.json`` serves)."""
    from sona import __version__

    return openapi_document(
        service_operations(service), version=__version__,
        description="SONA personalisation, search, catalog, sync and A/B endpoints, generated "
                    "from the route declarations (sona.serving.routing). Errors are "
                    "`ErrorBody` JSON; mutating routes need an API key.")


#: BentoML's own routes on every service (``bentoml`` adds them; SONA declares them here)
SYSTEM_OPERATIONS: tuple[Declared, ...] = (
    Declared("/livez", Operation("GET", "BentoML liveness probe (empty text body)",
                                 operation_id="bentoml_livez", media_types=("text/plain",),
                                 errors=(503,), tag="probes")),
    Declared("/healthz", Operation("GET", "BentoML liveness probe (alias of /livez)",
                                   operation_id="bentoml_healthz", media_types=("text/plain",),
                                   errors=(503,), tag="probes")),
    Declared("/readyz", Operation("GET", "BentoML readiness probe (empty text body)",
                                  operation_id="bentoml_readyz", media_types=("text/plain",),
                                  errors=(503,), tag="probes")),
    Declared("/metrics", Operation("GET", "Prometheus metrics (text exposition format)",
                                   operation_id="metrics", media_types=("text/plain",),
                                   tag="probes")),
    Declared("/schema.json", Operation("GET", "BentoML's own description of the service APIs",
                                       operation_id="bentoml_schema", tag="probes")),
    Declared(f"/static_content/{{{FILE_PARAM}}}", Operation(
        "GET", "BentoML's bundled UI files (scripts, styles, icons)",
        operation_id="bentoml_static", errors=(404,),
        media_types=("text/css", "text/javascript", "application/javascript", "image/png"),
        error_media_types=("application/json", "text/plain"), tag="probes")),
)


__all__ = [
    "COMMON_ERRORS", "ERROR_DESCRIPTIONS", "SYSTEM_OPERATIONS", "AnyObject", "Declared",
    "ErrorBody", "Operation", "api_mount", "api_route", "declare", "declared_routes",
    "openapi_document", "service_document", "service_operations",
]
