"""Fixtures for bwrap-specific tests: a runtime homed in tmp_path, and a box."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest, ExecResult
from tests.harness.bwrap import factory


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[BwrapRuntime]:
    async with factory(tmp_path) as rt:
        assert isinstance(rt, BwrapRuntime)
        yield rt


@pytest.fixture
async def box(runtime: BwrapRuntime) -> BwrapBox:
    return await runtime.create(BoxOptions())


async def run(box: object, *argv: str, **kw: object) -> tuple[ExecResult, bytes, bytes]:
    """Run argv in the box; (result, stdout, stderr)."""
    from boxlite_mcp.runtime.base import Box

    assert isinstance(box, Box)
    request = ExecRequest(command=argv[0], args=list(argv[1:]), **kw)  # type: ignore[arg-type]
    execution = await box.exec(request)
    await execution.close_stdin()
    out, err = bytearray(), bytearray()
    async for chunk in execution.output():
        (out if chunk.stream == "stdout" else err).extend(chunk.data)
    return await execution.wait(), bytes(out), bytes(err)


async def sh(box: object, script: str, **kw: object) -> tuple[ExecResult, bytes, bytes]:
    return await run(box, "sh", "-c", script, **kw)


# Tiny blocking host-file helpers (tests only touch small local files).


def exists(path: Path) -> bool:
    return path.exists()


def read_text(path: Path) -> str:
    return path.read_text()


def write_text(path: Path, text: str) -> None:
    path.write_text(text)


def listdir(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())
