"""The engine on every runtime under test (bwrap, REST 0.9 and 0.10, the official SDK):
it needs only exec with stdin, output, and signals, so it must behave the same on each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.types import BoxOptions, OutputChunk
from boxlite_mcp.sessions.python import PythonSessions
from tests.harness import runtimes

from .conftest import FAST

pytestmark = pytest.mark.anyio
FACTORIES = runtimes()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=sorted(FACTORIES))
async def any_runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Runtime]:
    home: Path = tmp_path_factory.mktemp(f"py-{request.param}")
    async with FACTORIES[request.param](home) as runtime:
        yield runtime


@pytest.fixture(scope="module")
async def engine_box(any_runtime: Runtime) -> AsyncIterator[tuple[PythonSessions, Box]]:
    engine = PythonSessions(FAST)
    box = await any_runtime.create(BoxOptions())
    try:
        yield engine, box
    finally:
        await engine.aclose()
        await any_runtime.remove(box.id, force=True)


async def test_state_output_and_errors(engine_box: tuple[PythonSessions, Box]) -> None:
    engine, box = engine_box
    chunks: list[OutputChunk] = []

    async def on_output(chunk: OutputChunk) -> None:
        chunks.append(chunk)

    await engine.run(box, "x = 20")
    code = "import os\nos.write(1, bytes(range(256)))\nos.write(2, b'e\\n')\nx * 2 + 2"
    result = await engine.run(box, code, on_output=on_output)
    assert result.result == "42" and result.error is None
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == bytes(range(256))
    assert result.stderr == "e\n"
    failed = await engine.run(box, "{}['missing']")
    assert failed.error is not None and failed.error.type == "KeyError"


async def test_interrupt_keeps_state(engine_box: tuple[PythonSessions, Box]) -> None:
    engine, box = engine_box
    await engine.run(box, "kept = 'k'")
    result = await engine.run(box, "import time\ntime.sleep(60)", timeout_seconds=1)
    assert result.timed_out and not result.session_lost
    assert result.error is not None and result.error.type == "KeyboardInterrupt"
    assert (await engine.run(box, "kept")).result == "'k'"
