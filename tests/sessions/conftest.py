"""Fixtures for the Python session engine: a bwrap runtime in tmp_path, a box, the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions
from boxlite_mcp.sessions.python import PythonLimits, PythonSessions
from tests.harness.bwrap import factory

#: Short enough that tests of the kill path stay quick.
FAST = PythonLimits(interrupt_grace_seconds=1.0)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[BwrapRuntime]:
    async with factory(tmp_path) as rt:
        assert isinstance(rt, BwrapRuntime)
        yield rt


@pytest.fixture
async def box(runtime: BwrapRuntime) -> Box:
    return await runtime.create(BoxOptions(name="py"))


@pytest.fixture
async def sessions() -> AsyncIterator[PythonSessions]:
    engine = PythonSessions(FAST)
    try:
        yield engine
    finally:
        await engine.aclose()
