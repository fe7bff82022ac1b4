"""The local runtime for the contract suite, on the official SDK's REST mode.

``LocalRuntime.rest`` is the same code as the embedded VM runtime (the SDK's
``Boxlite`` / ``Box`` / ``Execution``), with the SDK's REST client in place of
the VM. The factory starts the project's BoxLite server (0.10 generation, the
one SDK 0.10 speaks, API-key auth, strict OpenAPI checking) in this process over
a BwrapRuntime homed in the given directory, and yields a LocalRuntime pointed at
it. Opening the factory again on the same home restarts server and backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.local import LocalRuntime
from tests.harness.network import NET_ALLOW, SECRETS
from tools.boxlite_server import ServerConfig, serve

API_KEY = "blk_test_local-sdk-key"
#: Output the server keeps per execution for replay (the suite measures this
#: process's memory, server included).
BACKLOG_BYTES = 2 * 1024 * 1024


@asynccontextmanager
async def local_rest_runtime(home: Path, **server_fields: Any) -> AsyncIterator[LocalRuntime]:
    """A LocalRuntime on the SDK's REST client, talking to a strict 0.10 server over bwrap."""
    fields: dict[str, Any] = {"backlog_bytes": BACKLOG_BYTES, **server_fields}
    config = ServerConfig(generation="0.10", strict=True, api_key=SecretStr(API_KEY), **fields)
    backend = BwrapRuntime(home=home, net_allow=NET_ALLOW)
    try:
        async with serve(backend, config) as server:
            runtime = LocalRuntime.rest(server.url, api_key=API_KEY, box_secrets=SECRETS)
            try:
                yield runtime
            finally:
                await runtime.aclose()
            if server.violations:
                listed = "\n".join(f"- {violation}" for violation in server.violations[:20])
                raise AssertionError(
                    f"the BoxLite server (strict mode) saw OpenAPI violations from the "
                    f"official SDK's requests:\n{listed}"
                )
    finally:
        await backend.aclose()


def factory(home: Path) -> AsyncIterator[Runtime] | Any:
    return local_rest_runtime(home)


FACTORIES = {"local-rest": factory}
