"""The bwrap runtime for the contract suite: its home is the directory given.

Leaving the context closes the runtime: its running boxes stop (their
processes belong to this process), their state stays on disk, so opening the
factory again on the same home is a restart (see tests/contract/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from tests.harness.network import NET_ALLOW, SECRETS


@asynccontextmanager
async def factory(home: Path) -> AsyncIterator[Runtime]:
    """A BwrapRuntime homed in ``home``; no box keeps running after the context."""
    runtime = BwrapRuntime(home=home, net_allow=NET_ALLOW, secrets=SECRETS)
    try:
        yield runtime
    finally:
        await runtime.aclose()


FACTORIES = {"bwrap": factory}
