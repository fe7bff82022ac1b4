"""``python -m tools.boxlite_server``: one command, says where it listens, stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


async def test_starts_serves_and_stops(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.boxlite_server",
        "--home",
        str(tmp_path / "home"),
        "--strict",
        "--api-key",
        "k",
        "--no-clone",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        assert line.startswith("boxlite-server listening on http://127.0.0.1:")
        url = line.split()[-1]
        async with httpx.AsyncClient(base_url=url) as http:
            caps = (await http.get("/v1/config")).json()["capabilities"]
            assert caps["clone_enabled"] is False and caps["snapshots_enabled"] is True
            assert (await http.get("/v1/boxes")).status_code == 401
            me = await http.get("/v1/me", headers={"authorization": "Bearer k"})
            assert me.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert b"listening on" in stderr and b"k\n" not in stderr


async def test_bad_options_exit_2_with_one_line(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.boxlite_server",
        "--client-id",
        "only-id",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert "client_id and client_secret go together" in stderr.decode()


def test_serve_in_thread_for_blocking_clients(tmp_path: Path) -> None:
    from boxlite_mcp.runtime.bwrap import BwrapRuntime
    from tools.boxlite_server import ServerConfig, serve_in_thread

    with (
        serve_in_thread(
            lambda: BwrapRuntime(home=tmp_path / "home"), ServerConfig(strict=True)
        ) as server,
        httpx.Client(base_url=server.url) as http,
    ):  # a blocking client, no event loop
        assert http.post("/v1/boxes", json={"name": "t"}).status_code == 201
        eid = http.post(
            "/v1/default/boxes/t/exec", json={"command": "echo", "args": ["hi"]}
        ).json()["execution_id"]
        body = http.get(f"/v1/default/boxes/t/executions/{eid}/output").text
        assert '"data":"aGkK"' in body and "event: exit" in body
        assert http.delete("/v1/boxes/t", params={"force": "true"}).status_code == 204
        assert server.violations == []
