"""The public surface, pinned: what a client and an operator see must not drift by accident.

A refactor (moving modules, rewriting how tools are declared) must leave the MCP
surface, the command line and the environment variable names exactly as they
were. This test compares them with ``tests/golden/public_surface.json``, written
from the tree before such a change. A deliberate change of the surface updates the
golden file in the same commit: run ``UPDATE_GOLDEN=1 python -m pytest
tests/test_public_surface.py`` and review the diff.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from boxlite_mcp.settings import Settings
from tests.harness.bwrap import factory

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "public_surface.json"
_ENV_NAME = re.compile(r"^BOXLITE_[A-Z0-9_]*[A-Z0-9]$")


async def _mcp_surface(tmp_path: Path) -> dict[str, Any]:
    from boxlite_mcp.server import build_server

    async with factory(tmp_path / "home") as runtime:
        server = build_server(runtime, Settings(), runtime_reason="the golden test")
        async with Client(server) as client:
            tools = await client.list_tools()
            templates = await client.list_resource_templates()
            resources = await client.list_resources()
            prompts = await client.list_prompts()
            instructions = client.instructions
    return {
        "instructions": instructions,
        "tools": sorted(
            (t.model_dump(mode="json", exclude_none=True) for t in tools.tools),
            key=lambda t: t["name"],
        ),
        "resource_templates": sorted(
            (t.model_dump(mode="json", exclude_none=True) for t in templates.resource_templates),
            key=lambda t: t["uri_template"],
        ),
        "resources": sorted(
            (r.model_dump(mode="json", exclude_none=True) for r in resources.resources),
            key=lambda r: r["uri"],
        ),
        "prompts": sorted(
            (p.model_dump(mode="json", exclude_none=True) for p in prompts.prompts),
            key=lambda p: p["name"],
        ),
    }


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "boxlite_mcp", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return done.stdout


def _environment_names() -> list[str]:
    """Every environment variable name the package spells, plus one per Settings field."""
    names = {f"BOXLITE_MCP_{field.upper()}" for field in Settings.model_fields}
    for path in (ROOT / "boxlite_mcp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _ENV_NAME.match(node.value):
                    names.add(node.value)
    return sorted(names)


async def test_the_public_surface_matches_the_golden_file(tmp_path: Path) -> None:
    surface = {
        "mcp": await _mcp_surface(tmp_path),
        "cli_help": _help(),
        "cli_demo_help": _help("demo"),
        "environment": _environment_names(),
    }
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for part in ("environment", "cli_help", "cli_demo_help"):
        assert surface[part] == golden[part], f"{part} changed"
    mcp, expected = surface["mcp"], golden["mcp"]
    assert [t["name"] for t in mcp["tools"]] == [t["name"] for t in expected["tools"]]
    for got, want in zip(mcp["tools"], expected["tools"], strict=True):
        assert got == want, f"tool {want['name']} changed"
    for part in ("resource_templates", "resources", "prompts", "instructions"):
        assert mcp[part] == expected[part], f"{part} changed"


def test_the_console_script_names_a_function_that_exists() -> None:
    """``boxlite-mcp`` (pyproject's entry point) must survive a module move."""
    import importlib
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    target = project["project"]["scripts"]["boxlite-mcp"]
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
