"""Strict mode: a response that breaks the documents is a loud 500 and a violation;
a request that breaks them is a 400 and a violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.types import BoxInfo
from tests.harness.bwrap import factory as bwrap_factory
from tools.boxlite_server import ServerConfig, serve

pytestmark = pytest.mark.anyio


class _OverreportingBox:
    """A real bwrap box whose info claims 64 vCPUs (both documents allow 1..32)."""

    def __init__(self, box: Box) -> None:
        self._box = box

    def __getattr__(self, name: str) -> Any:
        return getattr(self._box, name)

    async def info(self) -> BoxInfo:
        return (await self._box.info()).model_copy(update={"cpus": 64})


class _OverreportingRuntime:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    async def get(self, box: str) -> Box:
        return _OverreportingBox(await self._runtime.get(box))


async def test_bad_response_is_a_500_and_a_violation(tmp_path: Path) -> None:
    async with bwrap_factory(tmp_path) as real:
        runtime: Runtime = _OverreportingRuntime(real)
        async with (
            serve(runtime, ServerConfig(strict=True)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            assert (await http.post("/v1/boxes", json={"name": "liar"})).status_code == 201
            assert server.violations == []
            for root, generation in (("/v1", "0.10"), ("/v1/default", "0.9")):
                response = await http.get(f"{root}/boxes/liar")
                assert response.status_code == 500
                message = response.json()["error"]["message"]
                assert "strict mode" in message and "cpus" in message and generation in message
            kinds = [(v.kind, v.operation, v.generation) for v in server.violations]
            assert kinds == [("response", "getBox", "0.10"), ("response", "getBox", "0.9")]
            assert server.violations[0].status == 200
        # Without strict mode the same response goes out unchecked.
        async with (
            serve(runtime, ServerConfig(strict=False)) as lax,
            httpx.AsyncClient(base_url=lax.url) as http,
        ):
            assert (await http.get("/v1/boxes/liar")).json()["cpus"] == 64
            assert lax.violations == []


async def test_bad_requests_are_400s_and_recorded(tmp_path: Path) -> None:
    async with (
        bwrap_factory(tmp_path) as runtime,
        serve(runtime, ServerConfig(strict=True)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        unknown_field = await http.post("/v1/boxes", json={"name": "x", "tty": True})
        assert unknown_field.status_code == 400
        assert "tty" in unknown_field.json()["error"]["message"]
        assert (await http.post("/v1/default/boxes", json={"cpus": 0})).status_code == 400
        bad_key = await http.post("/v1/boxes", json={}, headers={"idempotency-key": "k"})
        assert bad_key.status_code == 400 and "uuid" in bad_key.json()["error"]["message"]
        bad_page = await http.get("/v1/default/boxes", params={"pageSize": "0"})
        assert bad_page.status_code == 400
        assert (await http.get("/v1/boxes")).json()["boxes"] == []  # nothing was created
        assert [v.kind for v in server.violations] == ["request"] * 4
        assert all(v.status is None for v in server.violations)
