"""The bwrap runtime for the contract suite: a home under the test's tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime


@asynccontextmanager
async def factory(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A BwrapRuntime homed in ``tmp_path``; every box it has is removed on exit."""
    runtime = BwrapRuntime(home=tmp_path / "bwrap-home")
    try:
        yield runtime
    finally:
        for info in await runtime.list():
            try:
                await runtime.remove(info.id, force=True)
            except Exception:  # removed concurrently by the test: fine
                pass
        await runtime.aclose()


FACTORIES = {"bwrap": factory}
