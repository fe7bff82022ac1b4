"""python_run over real stdio: the server as a subprocess keeps a session across calls,
streams a cell's output as progress and sends a PNG as image content."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from mcp.client.client import Client

from tests.sessions.test_python_run import PNG_CELL, expected_png

from .test_stdio import _ok, params

pytestmark = pytest.mark.anyio


async def test_python_run_over_stdio(tmp_path: Path) -> None:
    async with Client(params(tmp_path / "home")) as client:
        _ok(await client.call_tool("box_create", {"name": "py"}))
        _ok(await client.call_tool("python_run", {"box": "py", "code": "n = 40"}))
        _ok(await client.call_tool("python_run", {"box": "py", "code": "n += 1"}))
        seen: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        third = _ok(
            await client.call_tool(
                "python_run",
                {"box": "py", "code": "print('adding one')\nn + 1"},
                progress_callback=on_progress,
            )
        )
        assert third["result"] == "42" and third["execution_count"] == 3
        assert "".join(seen) == "adding one\n"
        _ok(await client.call_tool("python_run", {"box": "py", "code": PNG_CELL}))
        shown = await client.call_tool("python_run", {"box": "py", "code": "Dot()"})
        images = [block for block in shown.content if block.type == "image"]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data) == expected_png()
