"""The generated reference pages (sona.docs): from the real typer app and BentoML service."""

from __future__ import annotations

import json
from pathlib import Path

from sona.docs import cli_command, render_cli, write_reference


def test_cli_reference_lists_every_command_with_its_options() -> None:
    page = render_cli(cli_command())
    assert "## `sona`" in page
    for command in ("sona serve", "sona run", "sona promote", "sona data fetch"):
        assert f"`{command}`" in page, command
    serve = page.split("`sona serve`", 1)[1].split("\n### ", 1)[0]
    assert "Usage: sona serve [OPTIONS]" in serve
    assert "`--port <int>`" in serve and "[default: 3000]" in serve


def test_api_reference_from_the_service_without_a_server(tmp_path: Path) -> None:
    api_md, openapi, cli_md = (tmp_path / n for n in ("api.md", "openapi.json", "cli.md"))
    assert sorted(write_reference(tmp_path)) == sorted([api_md, openapi, cli_md])
    spec = json.loads(openapi.read_text())
    assert spec["openapi"] == "3.1.0" and "/api/v1/admin/catalog/content" in spec["paths"]
    body = spec["paths"]["/api/v1/recommendations"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert spec["components"]["schemas"][ref]["required"] == ["user_id"]
    page = api_md.read_text()
    section = page.split("### `POST /api/v1/recommendations`", 1)[1].split("\n### ", 1)[0]
    assert f"[{ref}](#{ref.lower()})" in section
    schema = page.split(f"### {ref}\n", 1)[1].split("\n### ", 1)[0]
    assert "| `limit` | integer |  | 20 | minimum 1, maximum 100 |" in schema
    # the mounted Starlette routes are listed too: GET routes, the console, the WebSocket
    for row in ("| `/api/v1/experiments/{experiment_id}/report` | GET |",
                "| `/` | GET | `sona.serving.console_http` |",
                "| `/api/v1/sync/ws` | WebSocket |"):
        assert row in page, row
