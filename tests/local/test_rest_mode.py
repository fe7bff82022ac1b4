"""What is particular to the local runtime in the SDK's REST mode.

The contract suite covers the common behaviour (tests/contract, ``local-rest``);
these are the local runtime's own: what it reports about itself and the SDK's
limits, auth failures, capability gates read from the server, signal routing,
rootfs layouts passed through to the server, and the SDK's lossy output.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime import errors
from boxlite_mcp.runtime.local import LocalRuntime
from boxlite_mcp.runtime.local.oci import build_layout, host_rootfs
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tests.harness.local import API_KEY, local_rest_runtime

pytestmark = pytest.mark.anyio

DEADLINE = 60.0


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    async with local_rest_runtime(tmp_path / "home") as rt:
        yield rt


async def collect(execution: object) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    async for chunk in execution.output():  # type: ignore[attr-defined]
        (out if chunk.stream == "stdout" else err).extend(chunk.data)
    return bytes(out), bytes(err)


async def test_info_names_the_server_and_the_sdk_limits(runtime: LocalRuntime) -> None:
    info = await runtime.info()
    assert info.name == "local" and info.details["mode"] == "rest"
    assert info.endpoint is not None and info.endpoint.startswith("http://127.0.0.1:")
    assert info.api_generation == "0.10"
    assert info.capabilities.snapshots_enabled  # read from the server's /v1/config
    assert info.capabilities.binary_output is False
    assert info.capabilities.output_backpressure is False
    assert API_KEY not in info.model_dump_json()


async def test_capabilities_follow_the_server_and_gate_operations(tmp_path: Path) -> None:
    async with local_rest_runtime(tmp_path / "home", clone=False, export=False) as runtime:
        capabilities = (await runtime.info()).capabilities
        assert not capabilities.clone_enabled and not capabilities.export_enabled
        box = await runtime.create(BoxOptions())
        with anyio.fail_after(DEADLINE):
            await box.start()
            await box.stop()
        with pytest.raises(errors.UnsupportedError):
            await box.clone()
        with pytest.raises(errors.UnsupportedError):
            await box.export(tmp_path)
        await runtime.remove(box.id, force=True)


async def test_a_wrong_api_key_is_an_auth_error_without_the_key(tmp_path: Path) -> None:
    async with local_rest_runtime(tmp_path / "home") as good:
        url = (await good.info()).endpoint
        assert url is not None
        bad = LocalRuntime.rest(url, api_key="blk_wrong_key_42")
        try:
            with pytest.raises(errors.AuthError) as caught:
                await bad.list()
        finally:
            await bad.aclose()
    assert "blk_wrong_key_42" not in caught.value.message
    assert "BOXLITE_API_KEY" in caught.value.message


@pytest.mark.parametrize("attempt", range(5))  # the kill races the SDK's attach
async def test_sigkill_through_signal_is_a_kill_and_bad_numbers_are_refused(
    runtime: LocalRuntime,
    attempt: int,
) -> None:
    box = await runtime.create(BoxOptions())
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(ExecRequest(command="sleep", args=["1000"]))
        with pytest.raises(errors.InvalidArgumentError, match="signal"):
            await execution.signal(0)
        with pytest.raises(errors.InvalidArgumentError):
            await execution.signal(10_000)
        await execution.signal(signal.SIGKILL)
        result = await execution.wait()
    assert result.exit_code == -signal.SIGKILL


async def test_a_box_from_a_host_built_oci_layout(runtime: LocalRuntime, tmp_path: Path) -> None:
    """The layout builder's output boots (on the server's runtime) through the SDK."""
    layout = build_layout(host_rootfs(tmp_path / "rootfs"), tmp_path / "layout")
    box = await runtime.create(BoxOptions(rootfs_path=str(layout)))
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(
            ExecRequest(
                command="/bin/sh", args=["-c", "ls /usr/bin | wc -l; test -e /usr/bin/python3"]
            )
        )
        out, err = await collect(execution)
        result = await execution.wait()
    assert result.exit_code == 1, err  # no python3: the tiny image, not the host's root
    assert 10 < int(out) < 100


async def test_output_that_is_not_utf8_arrives_replaced_as_the_sdk_decodes_it(
    runtime: LocalRuntime,
) -> None:
    """A known SDK limit (hence ``binary_output=False``): when this fails, the SDK
    became binary-safe and the capability should say so."""
    box = await runtime.create(BoxOptions())
    with anyio.fail_after(DEADLINE):
        execution = await box.exec(ExecRequest(command="printf", args=["ok\\377\\n"]))
        out, _ = await collect(execution)
        await execution.wait()
    assert out == "ok\ufffd\n".encode()


async def test_a_closed_runtime_says_so(tmp_path: Path) -> None:
    async with local_rest_runtime(tmp_path / "home") as runtime:
        await runtime.aclose()
        with pytest.raises(errors.InvalidStateError, match="closed"):
            await runtime.list()
