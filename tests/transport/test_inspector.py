"""The MCP Inspector CLI lists our tools in --strict mode without a complaint (stdio and HTTP)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import server_env

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "inspector_check.sh"


@pytest.mark.skipif(
    shutil.which("npx") is None, reason="npx (Node.js) is not installed; the Inspector runs on it"
)
def test_inspector_strict_tools_list(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--", "--runtime", "bwrap", "--home", str(tmp_path / "home")],
        env=server_env(PYTHON=sys.executable, HOME=os.environ.get("HOME", str(tmp_path))),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode == 3:
        pytest.skip(f"the MCP Inspector is unavailable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inspector_check: stdio: " in done.stdout
    assert "inspector_check: streamable-http: " in done.stdout
    assert "no findings" in done.stdout
