"""``sona mcp``: SONA as a Model Context Protocol server (official ``mcp`` SDK, MCPServer).

The server holds one :class:`~sona.serving.app.SonaApp` built from the serving config, the
same object the BentoML service runs, and each tool calls its handlers through
:class:`~sona.mcp.tools.SonaTools`. STDIO is the default transport (a desktop assistant
starts ``sona mcp`` as a subprocess); ``--transport streamable-http`` serves
``http://HOST:PORT/mcp`` instead. Tool arguments are typed with bounds, so the SDK rejects a
bad argument before the tool runs, with the argument named in the error; errors of the
service (unknown ids, no model) come back as tool errors with the service's message.

Resources: ``content://catalog`` (the most popular titles with their item URIs) and
``content://item/{content_id}`` (one title's details), both JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError

from sona import __version__
from sona.mcp.tools import SonaTools, ToolFailure
from sona.serving.schemas import RecommendationContext

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from sona.serving.app import SonaApp

T = TypeVar("T")

UserId = Annotated[str, Field(min_length=1, max_length=128,
                              description="user id (MovieLens user ids are 1-943)")]
ContentId = Annotated[str, Field(min_length=1, max_length=128,
                                 description="content id, e.g. '50' (Star Wars) or a catalog "
                                             "UUID")]
Limit = Annotated[int, Field(ge=1, le=100, description="number of items (1-100)")]
TimeOfDay = Literal["morning", "afternoon", "evening", "night"]
DeviceType = Literal["tv", "mobile", "desktop", "tablet"]

INSTRUCTIONS = (
    "SONA recommends and finds films. Use semantic_search to find titles by description, "
    "get_recommendations for a user's personalised list, explain_recommendation to say why "
    "an item was recommended, check_availability for where to watch, and the watchlist "
    "tools to change a user's watchlist (synced to all their devices).")


def _context(time_of_day: TimeOfDay | None, device_type: DeviceType | None,
             mood: str | None, weekday: int | None, hour: int | None,
             viewing_with: list[str] | None) -> RecommendationContext | None:
    given = {k: v for k, v in {"time_of_day": time_of_day, "device_type": device_type,
                               "mood": mood, "weekday": weekday, "hour": hour,
                               "viewing_with": viewing_with}.items() if v is not None}
    return RecommendationContext.model_validate(given) if given else None


def build_server(app: SonaApp) -> MCPServer:
    """The MCP server with SONA's tools and resources bound to ``app``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    tools = SonaTools(app)
    server: MCPServer = MCPServer(name="sona", version=__version__, instructions=INSTRUCTIONS)

    def run(call: Callable[[], T]) -> T:
        try:
            return call()
        except ToolFailure as exc:
            raise ToolError(str(exc)) from exc
        except ValidationError as exc:  # a request model built from valid-looking arguments
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors())
            raise ToolError(f"validation_error: {problems}") from exc

    @server.tool(description="Search the catalog by meaning and keywords (hybrid search). "
                             "Optional genre and year filters; user_id personalises.")
    def semantic_search(
        query: Annotated[str, Field(min_length=1, max_length=500,
                                    description="what to look for")],
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
        genres: list[str] | None = None,
        year_min: Annotated[int | None, Field(ge=1870, le=2100)] = None,
        year_max: Annotated[int | None, Field(ge=1870, le=2100)] = None,
        user_id: UserId | None = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.semantic_search(query, limit, genres, year_min, year_max,
                                                 user_id))

    @server.tool(description="Personalised recommendations for a user, optionally for a "
                             "viewing context (time of day, device, mood, weekday, hour).")
    def get_recommendations(
        user_id: UserId, limit: Limit = 10, time_of_day: TimeOfDay | None = None,
        device_type: DeviceType | None = None,
        mood: Annotated[str | None, Field(max_length=64)] = None,
        weekday: Annotated[int | None, Field(ge=0, le=6, description="0 = Monday")] = None,
        hour: Annotated[int | None, Field(ge=0, le=23)] = None,
        viewing_with: list[str] | None = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.get_recommendations(user_id, limit, _context(
            time_of_day, device_type, mood, weekday, hour, viewing_with)))

    @server.tool(description="Titles similar to a given title (item vector index).")
    def similar_content(content_id: ContentId, limit: Limit = 10) -> dict[str, Any]:
        return run(lambda: tools.similar_content(content_id, limit))

    @server.tool(description="Why an item is (or is not) recommended to a user: its rank, "
                             "each source's weight, normalised score and contribution, the "
                             "LoRA term, the A/B arm and the context used.")
    def explain_recommendation(
        user_id: UserId, content_id: ContentId, time_of_day: TimeOfDay | None = None,
        device_type: DeviceType | None = None,
        mood: Annotated[str | None, Field(max_length=64)] = None,
        weekday: Annotated[int | None, Field(ge=0, le=6)] = None,
        hour: Annotated[int | None, Field(ge=0, le=23)] = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.explain_recommendation(user_id, content_id, _context(
            time_of_day, device_type, mood, weekday, hour, None)))

    @server.tool(description="Metadata of a title: title, year, genres, overview, people.")
    def get_content_details(content_id: ContentId) -> dict[str, Any]:
        return run(lambda: tools.get_content_details(content_id))

    @server.tool(description="Where a title can be watched: platforms, prices, regions and "
                             "deep links from the catalog; says so when there is no data.")
    def check_availability(
        content_id: ContentId,
        region: Annotated[str | None, Field(pattern=r"^[A-Za-z]{2}$",
                                            description="ISO 3166-1 alpha-2")] = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.check_availability(content_id, region))

    @server.tool(description="Add a title to a user's watchlist (synced to their devices).")
    def watchlist_add(user_id: UserId, content_id: ContentId) -> dict[str, Any]:
        return run(lambda: tools.watchlist_add(user_id, content_id))

    @server.tool(description="Remove a title from a user's watchlist (on every device).")
    def watchlist_remove(user_id: UserId, content_id: ContentId) -> dict[str, Any]:
        return run(lambda: tools.watchlist_remove(user_id, content_id))

    @server.tool(description="A user's watchlist and titles in progress (all devices merged).")
    def watchlist_list(user_id: UserId) -> dict[str, Any]:
        return run(lambda: tools.watchlist_list(user_id))

    @server.tool(description="A user's registered devices (active and revoked).")
    def list_devices(user_id: UserId) -> dict[str, Any]:
        return run(lambda: tools.list_devices(user_id))

    @server.tool(description="A/B experiments, optionally by status (draft, running, "
                             "paused, completed, archived).")
    def list_experiments(
        status: Annotated[str | None, Field(max_length=32)] = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.list_experiments(status))

    @server.tool(description="The statistical report of an experiment (per-variant metrics, "
                             "lift, significance).")
    def experiment_report(
        experiment_id: Annotated[str, Field(min_length=1, max_length=128)],
        metric: Annotated[str | None, Field(max_length=64)] = None,
    ) -> dict[str, Any]:
        return run(lambda: tools.experiment_report(experiment_id, metric))

    @server.resource("content://catalog", name="catalog", mime_type="application/json",
                     description="The most popular titles, each with its item URI.")
    def catalog() -> str:
        return json.dumps(run(lambda: tools.catalog_listing()))

    @server.resource("content://item/{content_id}", name="item",
                     mime_type="application/json", description="One title's details.")
    def item(content_id: str) -> str:
        return json.dumps(run(lambda: tools.get_content_details(content_id)))

    return server


def serve(app: SonaApp, *, transport: Literal["stdio", "streamable-http"] = "stdio",
          host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped."""
    server = build_server(app)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


__all__ = ["INSTRUCTIONS", "build_server", "serve"]
