"""``sona mcp``: serve SONA's tools to an assistant over MCP (STDIO or streamable HTTP)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from sona.cli import app


@app.command("mcp")
def mcp_command(
    config: Annotated[Path | None, typer.Option(
        "--config", help="serving YAML (default: $SONA_SERVING_CONFIG, else defaults)")] = None,
    transport: Annotated[str, typer.Option(
        "--transport", help="stdio (default: for desktop assistants) or streamable-http")
    ] = "stdio",
    host: Annotated[str, typer.Option("--host", help="streamable-http address")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="streamable-http port")] = 8765,
) -> None:
    """Run the MCP server over the serving config's model, search, catalog and sync."""
    from sona.errors import ConfigError
    from sona.mcp import serve
    from sona.serving.app import SonaApp, load_serving_config

    if transport not in ("stdio", "streamable-http"):
        raise ConfigError(f"--transport must be stdio or streamable-http, got {transport!r}")
    # stdout is the protocol channel under stdio: every log line goes to stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    sona_app = SonaApp(load_serving_config(config))
    kind: Literal["stdio", "streamable-http"] = \
        "stdio" if transport == "stdio" else "streamable-http"
    try:
        serve(sona_app, transport=kind, host=host, port=port)
    finally:
        sona_app.close()
