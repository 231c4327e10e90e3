"""The SONA console: a static web page at ``/`` and the read-only JSON it needs.

The page itself (``sona/serving/console/``: plain HTML, JavaScript and CSS, no build step
and nothing fetched from the internet) calls the service's own endpoints (search,
autocomplete, recommendations, personalisation score, similar items, experiments, health);
this module only serves the files and three read-only views that no other route gives:

* ``GET /console/api/leaderboards``: the leaderboards ``sona run`` wrote to
  ``experiments/results/*.json`` (rows with metrics and MLflow run ids; sweeps with their
  best trial), read at request time so a new run shows without a restart.
* ``GET /console/api/model``: the served bundle (name, version, run id, model class, blend
  weights, MMR λ) and a sample of the viewers it was trained on, for the viewer picker.
* ``GET /console/api/items?ids=1,2``: title, year, genres and platforms of catalog items
  (from the search engine's documents), so recommendation lists show titles, not ids.

They run inside ``SonaApp.dispatch`` like every other route (same error bodies, request
metrics); none needs an API key, as they show nothing ``/health`` and search do not.
``serving/service.py`` mounts :func:`console_routes` the way it mounts the catalog routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from sona.serving.asgi import parse_query
from sona.serving.errors import ApiError
from sona.serving.process import REPO_ROOT
from sona.serving.routing import Operation, api_mount, api_route
from sona.wire import WHITESPACE

if TYPE_CHECKING:
    from sona.serving.app import SonaApp

#: the page's files (index.html, console.js, console.css)
STATIC_DIR = Path(__file__).resolve().parent / "console"
#: where ``sona run`` and ``sona sweep`` write their leaderboards
RESULTS_DIR = REPO_ROOT / "experiments" / "results"
PREFIX = "/console"
MAX_ITEMS = 200  # ids per /console/api/items request
N_VIEWERS = 50  # viewers offered by the picker


class ItemsQuery(BaseModel):
    """``?ids=`` of ``/console/api/items``: 1 to :data:`MAX_ITEMS` comma-separated ids."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    # no blanks: WHITESPACE written out, so document and server read the class alike
    ids: str = Field(pattern=rf"^[^,{WHITESPACE}]+(,[^,{WHITESPACE}]+){{0,{MAX_ITEMS - 1}}}$",
                     description=f"1 to {MAX_ITEMS} comma-separated item ids, no blanks")


def read_leaderboards(results_dir: Path) -> list[dict[str, Any]]:
    """Every leaderboard JSON in ``results_dir``, condensed for the page.

    A leaderboard (``sona run``) gives ``{name, kind: "leaderboard", k, sort_metric, rows,
    published}``; a sweep (``sona sweep``) gives ``{name, kind: "sweep", model, metric, k,
    best_value, best_params, test_metrics, parent_run_id, n_trials}``. Files of another
    shape are skipped.

    Args:
        results_dir: folder of ``*.json`` results.

    Returns:
        One dict per file, sorted by file name.
    """
    boards: list[dict[str, Any]] = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if "rows" in data:
            rows = [{k: r.get(k) for k in ("name", "model", "source", "metrics", "fit_s",
                                           "run_id")} for r in data["rows"]]
            boards.append({"name": data.get("name", path.stem), "kind": "leaderboard",
                           "file": path.name, "k": data.get("k"),
                           "sort_metric": data.get("sort_metric"), "rows": rows,
                           "published": data.get("published", []),
                           "parent_run_id": data.get("parent_run_id"),
                           "git_sha": data.get("git_sha")})
        elif "trials" in data:
            boards.append({"name": path.stem, "kind": "sweep", "file": path.name,
                           "model": data.get("model"), "metric": data.get("metric"),
                           "k": data.get("k"), "best_value": data.get("best_value"),
                           "best_params": data.get("best_params"),
                           "test_metrics": data.get("test_metrics"),
                           "parent_run_id": data.get("parent_run_id"),
                           "n_trials": len(data.get("trials") or [])})
    return boards


def model_summary(app: SonaApp, n_viewers: int = N_VIEWERS) -> dict[str, Any]:
    """The served bundle's identity and blend, plus viewers for the picker.

    Raises:
        ApiError: 503 when no model is loaded.
    """
    model = app.store.current  # ApiError 503 before the first load
    manifest = model.manifest
    # the most active training users: they have the richest explanations
    activity = np.asarray(model.seen.getnnz(axis=1)).ravel()
    order = np.sort(np.argsort(-activity, kind="stable")[:n_viewers])
    viewers = model.users.ids(order)
    return {"name": model.name, "version": model.version,
            "run_id": manifest.get("run_id"), "model_class": manifest.get("model_class"),
            "weights": manifest.get("weights"), "mmr_lambda": manifest.get("mmr_lambda"),
            "n_users": manifest.get("n_users"), "n_items": manifest.get("n_items"),
            "viewers": [str(v) for v in viewers.tolist()]}


def item_details(app: SonaApp, raw_ids: str) -> dict[str, Any]:
    """``{items: {id: {title, year, genres, platforms}}}`` for comma-separated ids.

    Unknown ids are left out (the page shows the bare id).

    Raises:
        ApiError: 400 for no ids or more than :data:`MAX_ITEMS`; 503 without a search engine.
    """
    ids = [i.strip() for i in raw_ids.split(",") if i.strip()]
    if not ids or len(ids) > MAX_ITEMS:
        raise ApiError(400, "validation_error",
                       f"ids: give 1 to {MAX_ITEMS} comma-separated ids", fields=["ids"])
    engine = app.search.handler.engine
    docs = engine.documents_
    found: dict[str, Any] = {}
    for item_id in ids:
        row = None
        # the engine keeps MovieLens ids as integers, a catalog's as strings
        for key in (item_id, int(item_id)) if item_id.isdigit() else (item_id,):
            try:
                row = docs.iloc[engine.item_position(key)]
                break
            except (KeyError, LookupError):
                continue
        if row is None:
            continue
        year = row["year"]
        found[item_id] = {"title": str(row["title"]),
                          "year": None if year is None or np.isnan(year) else int(year),
                          "genres": [str(g) for g in row["genres"]],
                          "platforms": [str(p) for p in row["platforms"]]}
    return {"items": found}


def console_routes(get_app: Callable[[], SonaApp], *,
                   results_dir: Path = RESULTS_DIR) -> Starlette:
    """The Starlette app of the console page and its JSON (see module docstring)."""

    async def run(endpoint: str, call: Callable[[SonaApp], Any]) -> JSONResponse:
        app = get_app()
        status, body = await run_in_threadpool(app.dispatch, endpoint, lambda: call(app))
        return JSONResponse(body, status_code=status)

    async def page(_: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def leaderboards(_: Request) -> JSONResponse:
        return await run("console_leaderboards",
                         lambda app: {"leaderboards": read_leaderboards(results_dir)})

    async def model(_: Request) -> JSONResponse:
        return await run("console_model", model_summary)

    async def items(request: Request) -> JSONResponse:
        query = parse_query(request, ItemsQuery)
        if isinstance(query, JSONResponse):
            return query
        return await run("console_items", lambda app: item_details(app, query.ids))

    tag = "console"
    return Starlette(routes=[
        api_route("/", page, Operation("GET", "The SONA console (HTML page)",
                                       operation_id="console_page",
                                       media_types=("text/html",), tag=tag)),
        api_route(PREFIX + "/api/leaderboards", leaderboards, Operation(
            "GET", "Leaderboards and sweeps from experiments/results",
            operation_id="console_leaderboards", tag=tag)),
        api_route(PREFIX + "/api/model", model, Operation(
            "GET", "The served bundle and viewers for the picker", operation_id="console_model",
            errors=(503,), tag=tag)),
        api_route(PREFIX + "/api/items", items, Operation(
            "GET", "Titles, years, genres and platforms of items", operation_id="console_items",
            query=ItemsQuery, errors=(503,), tag=tag)),
        api_mount(PREFIX + "/static", StaticFiles(directory=STATIC_DIR), Operation(
            "GET", "The console's script and style sheet", operation_id="console_static",
            media_types=("text/css", "text/javascript", "application/javascript"),
            errors=(404,), error_media_types=("application/json", "text/plain"), tag=tag),
            name="console-static"),
    ])


__all__ = ["PREFIX", "RESULTS_DIR", "STATIC_DIR", "console_routes", "item_details",
           "model_summary", "read_leaderboards"]
