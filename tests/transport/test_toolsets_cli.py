"""``--tools`` / ``BOXLITE_MCP_TOOLS`` on the real command line: checked first, served as asked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from boxlite_mcp.server.toolsets import CORE_TOOLS

from .conftest import server_env
from .test_cli import run_cli

pytestmark = pytest.mark.anyio


def test_an_unknown_tool_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli("--runtime", "bwrap", "--home", str(tmp_path), "--tools", "exec_run,box_nuke")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "'box_nuke'" in lines[0] and "--tools / BOXLITE_MCP_TOOLS" in lines[0]
    assert "box_create, box_list" in lines[0]  # the valid names follow
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not any(tmp_path.iterdir())  # refused before any runtime opened


def test_the_environment_variable_is_checked_the_same_way(tmp_path: Path) -> None:
    env = {"BOXLITE_MCP_TOOLS": "cor"}
    done = run_cli("--runtime", "bwrap", "--home", str(tmp_path), env=env)
    assert done.returncode == 2
    assert "no tool 'cor'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


async def test_stdio_server_offers_the_core_set(tmp_path: Path) -> None:
    args = ["-m", "boxlite_mcp", "--runtime", "bwrap", "--home", str(tmp_path / "home")]
    params = StdioServerParameters(
        command=sys.executable, args=args, env=server_env(BOXLITE_MCP_TOOLS="core")
    )
    async with Client(params) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert 8 <= len(listed) <= 12 and set(listed) <= set(CORE_TOOLS)
        made = await client.call_tool("box_create", {"name": "c"})
        assert not made.is_error
        ran = await client.call_tool("exec_run", {"box": "c", "command": "echo ok"})
        assert (ran.structured_content or {}).get("stdout") == "ok\n"
