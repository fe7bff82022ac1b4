"""Retries: idempotent requests survive 502/503/504, cut responses and connect errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from boxlite_mcp.runtime.errors import UnavailableError
from boxlite_mcp.runtime.rest import RestRuntime
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import running, settings_for
from .fake import FakeBoxlite
from .serving import serve

pytestmark = pytest.mark.anyio


async def test_gets_are_retried_through_gateway_errors(generation: str) -> None:
    fake = FakeBoxlite(fail_first={"/metrics": [502, 503, 504]})
    async with running(fake, generation, retries=3) as runtime:
        metrics = await runtime.metrics()
    assert metrics.total_commands_executed == 2
    assert fake.recorder is not None
    assert len(fake.recorder.matching("GET", "/metrics")) == 4


async def test_retries_give_up_with_unavailable(generation: str) -> None:
    fake = FakeBoxlite(fail_first={"/metrics": [503] * 10})
    async with running(fake, generation, retries=2) as runtime:
        with pytest.raises(UnavailableError) as caught:
            await runtime.metrics()
    assert "HTTP 503" in caught.value.message
    assert fake.recorder is not None
    assert len(fake.recorder.matching("GET", "/metrics")) == 3


async def test_a_post_without_idempotency_key_is_not_retried(generation: str) -> None:
    fake = FakeBoxlite(fail_first={"/snapshots": [503]})
    async with running(fake, generation, retries=3) as runtime:
        box = await runtime.create(BoxOptions(name="b"))
        with pytest.raises(UnavailableError):
            await box.snapshot_create("s1")
    assert fake.recorder is not None
    assert len(fake.recorder.matching("POST", "/snapshots")) == 1


async def test_a_create_retried_after_a_cut_response_makes_one_box(generation: str) -> None:
    fake = FakeBoxlite(cut_responses=["/boxes"])
    async with running(fake, generation, retries=3) as runtime:
        box = await runtime.create(BoxOptions(name="once"))
        listed = await runtime.list()
    assert [info.id for info in listed] == [box.id]
    assert fake.recorder is not None
    creates = fake.recorder.matching("POST", "/boxes")
    assert len(creates) == 2, "the cut create was not retried"
    keys = {r.header("idempotency-key") for r in creates}
    assert len(keys) == 1 and None not in keys


async def test_every_logical_mutation_gets_its_own_key(generation: str) -> None:
    fake = FakeBoxlite()
    async with running(fake, generation) as runtime:
        box = await runtime.create(BoxOptions(name="a"))
        await runtime.create(BoxOptions(name="b"))
        await box.start()
        await box.stop()
        await runtime.remove("b")
    assert fake.recorder is not None
    mutations = [r for r in fake.recorder.requests if r.method in ("POST", "DELETE")]
    keys = [r.header("idempotency-key") for r in mutations]
    assert len(mutations) == 5 and None not in keys and len(set(keys)) == 5


async def test_an_exec_retried_after_a_cut_runs_once(generation: str) -> None:
    fake = FakeBoxlite(cut_responses=["/exec"])
    async with running(fake, generation, retries=3) as runtime:
        box = await runtime.create(BoxOptions(name="b"))
        from boxlite_mcp.runtime.types import ExecRequest

        execution = await box.exec(ExecRequest(command="echo", args=["x"]))
        result = await execution.wait()
    assert result.exit_code == 0
    assert len(fake.executions) == 1


def reserve_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connect_errors_are_retried_until_the_server_is_up() -> None:
    fake = FakeBoxlite()
    port = reserve_port()
    settings = settings_for(
        f"http://127.0.0.1:{port}", "0.9", fake, retries=20, backoff_initial=0.05, backoff_max=0.1
    )
    async with RestRuntime(settings) as runtime:
        listing = asyncio.create_task(runtime.list())
        await asyncio.sleep(0.2)
        assert not listing.done()
        async with serve(fake.app("0.9"), port=port):
            assert await asyncio.wait_for(listing, 10) == []


async def test_connect_errors_give_up_after_the_retries() -> None:
    port = reserve_port()
    settings = settings_for(f"http://127.0.0.1:{port}", "0.9", FakeBoxlite(), retries=2)
    async with RestRuntime(settings) as runtime:
        with pytest.raises(UnavailableError) as caught:
            await runtime.list()
    assert f"127.0.0.1:{port}" in caught.value.message
