"""The README and server.json say what the server really serves."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tools.reference import END, START, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.anyio
async def test_readme_reference_matches_the_server() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(START), readme.index(END) + len(END)
    assert readme[start:end] == await render(), (
        "README.md's reference drifted from the server: run `python -m tools.reference --write`"
    )


def test_server_json_matches_the_package() -> None:
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert server["version"] == project["version"]
    assert all(p["version"] == project["version"] for p in server["packages"])
    assert f"mcp-name: {server['name']}" in readme
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9-]+", server["name"])


def test_readme_names_every_cli_variable() -> None:
    """Each BOXLITE_MCP_* variable the CLI documents appears in the README."""
    from boxlite_mcp.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"BOXLITE_MCP_{name.upper()}"
        for name in Settings.model_fields
        if f"BOXLITE_MCP_{name.upper()}" not in readme
    ]
    assert not missing, f"README.md does not mention {missing}"
