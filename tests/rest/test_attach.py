"""``Box.attach``: another process follows an execution by id from given offsets.

Against the project's BoxLite server over real bwrap boxes, for both API
generations: a second runtime (what a taking-over replica opens) attaches to an
execution the first one started and gets each stream exactly after its offsets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Execution
from boxlite_mcp.runtime.errors import NotFoundError, UnsupportedError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tests.harness.bwrap import factory as bwrap_factory
from tools.boxlite_server import RunningServer, ServerConfig, serve

from .conftest import FAST, GENERATIONS

pytestmark = pytest.mark.anyio

#: Ten lines on each stream, a tenth of a second apart.
SCRIPT = 'for i in 0 1 2 3 4 5 6 7 8 9; do echo "out $i"; echo "err $i" >&2; sleep 0.1; done'
WHOLE_OUT = b"".join(f"out {i}\n".encode() for i in range(10))
WHOLE_ERR = b"".join(f"err {i}\n".encode() for i in range(10))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with bwrap_factory(tmp_path) as runtime, serve(runtime, ServerConfig()) as running:
        yield running


async def drain(execution: Execution) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    async for chunk in execution.output():
        (out if chunk.stream == "stdout" else err).extend(chunk.data)
    return bytes(out), bytes(err)


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_a_second_runtime_resumes_each_stream_after_its_offsets(
    server: RunningServer, generation: str
) -> None:
    settings = RestSettings(url=server.url, api=generation, **FAST)
    async with RestRuntime(settings) as first, RestRuntime(settings) as second:
        box = await first.create(BoxOptions())
        execution = await box.exec(ExecRequest(command="sh", args=["-c", SCRIPT]))
        seen = {"stdout": bytearray(), "stderr": bytearray()}
        async for chunk in execution.output():  # the first replica reads a little, then dies
            seen[chunk.stream].extend(chunk.data)
            if len(seen["stdout"]) >= 6 and len(seen["stderr"]) >= 6:
                break
        theirs = await second.get(box.id)
        attached = await theirs.attach(
            execution.id,
            stdout_offset=len(seen["stdout"]),
            stderr_offset=len(seen["stderr"]),
            timeout_seconds=30,
        )
        out, err = await drain(attached)
        assert bytes(seen["stdout"]) + out == WHOLE_OUT
        assert bytes(seen["stderr"]) + err == WHOLE_ERR
        assert (await attached.wait()).exit_code == 0


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_attaching_to_an_unknown_execution_says_it_is_unknown(
    server: RunningServer, generation: str
) -> None:
    settings = RestSettings(url=server.url, api=generation, **FAST)
    async with RestRuntime(settings) as runtime:
        box = await runtime.create(BoxOptions())
        with pytest.raises(NotFoundError, match=r"no-such-exec.*cannot be re-attached"):
            await box.attach("no-such-exec", stdout_offset=3)


async def test_bwrap_says_it_cannot_attach(tmp_path: Path) -> None:
    async with bwrap_factory(tmp_path) as runtime:
        box = await runtime.create(BoxOptions())
        with pytest.raises(
            UnsupportedError, match=r"bwrap runtime cannot re-attach.*--runtime rest"
        ):
            await box.attach("exec-1")
