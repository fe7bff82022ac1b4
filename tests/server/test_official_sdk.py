"""The official BoxLite SDK, a real 0.10 client nobody here wrote, against our server.

It drives create, list, get, exec (stdout, stderr, exit code, stdin, 3 MB of
output), copy in and out (a file and a tree), metrics, stop and remove through
``Boxlite.rest(...)``, in strict mode: every request it sends and every
response it gets is checked against box-api-v0.10.yaml.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.server.conftest import StartServer

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).with_name("sdk_scenario.py")


async def test_official_sdk_drives_the_server(start_server: StartServer, tmp_path: Path) -> None:
    pytest.importorskip("boxlite")
    server = await start_server(api_key="sdk-key")
    workdir = tmp_path / "sdk"
    workdir.mkdir()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        server.url,
        "sdk-key",
        str(workdir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    seen = json.loads(stdout.decode().strip().splitlines()[-1])
    assert seen["ok"], seen.get("traceback")

    created = seen["created"]
    assert created["name"] == "sdk-box" and len(created["id"]) == 26
    assert created["status"] == "configured" and created["image"] == "host"
    assert seen["listed"] == ["sdk-box"]
    assert seen["get_by_name"] == created["id"] and seen["get_missing"] is None

    assert seen["exec"] == {"stdout": "out\n", "stderr": "err\n", "exit_code": 3}
    assert seen["exec_stdin"] == {"stdout": "fed\nend\n", "stderr": "", "exit_code": 0}
    assert seen["exec_big"] == {"stdout": 3_000_000, "stderr": "", "exit_code": 0}

    # A directory is copied as itself, "SRC/." as its contents (the SDK's docker-cp rule).
    assert seen["in_box"]["stdout"] == (
        ".\n./flat\n./flat/one.txt\n./flat/sub\n./flat/sub/two.txt\n./one.txt\n./tree\n"
        "./tree/in\n./tree/in/one.txt\n./tree/in/sub\n./tree/in/sub/two.txt\none\ntwo\n"
    )
    assert seen["copied_out"] == {
        "file": "one\n",
        "tree": ["one.txt", "sub", "sub/two.txt"],
        "two": "two\n",
    }

    assert seen["box_metrics"]["commands"] >= 4
    assert seen["box_metrics"]["total_create_ms"] is not None
    assert seen["runtime_metrics"]["boxes_created"] >= 1
    assert seen["runtime_metrics"]["commands"] >= 4

    assert seen["stopped"] == "stopped" and seen["removed"] is None
    assert server.violations == []
