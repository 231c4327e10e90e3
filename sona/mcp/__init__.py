"""SONA's MCP server: tools and resources over the serving handlers (``sona mcp``)."""

from sona.mcp.server import build_server, serve
from sona.mcp.tools import ASSISTANT_DEVICE, SonaTools, ToolFailure

__all__ = ["ASSISTANT_DEVICE", "SonaTools", "ToolFailure", "build_server", "serve"]
