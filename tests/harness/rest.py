"""The rest runtime for the contract suite: RestRuntime → tools/boxlite_server → bwrap.

Each factory starts the project's BoxLite server in this process (uvicorn on
127.0.0.1, a free port) over a BwrapRuntime homed in the given directory, with
auth on (OAuth2 client credentials for 0.9, an API key for 0.10) and strict mode
on: every request and response is checked against the OpenAPI documents, and a
deviation fails the test that caused it when the context closes. It yields a
RestRuntime pointed at that server. Opening a factory again on the same home is a
restart of both the server and the runtime behind it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from tests.harness.network import NET_ALLOW, SECRETS
from tools.boxlite_server.app import RunningServer, serve
from tools.boxlite_server.config import ServerConfig

API_KEY = "blk_test_contract-suite-key"
CLIENT_ID = "contract-suite"
CLIENT_SECRET = "contract-suite-secret"
#: Output the server keeps per execution for replay. The suite measures the memory
#: of this whole process, server included; 2 MiB keeps its share small.
BACKLOG_BYTES = 2 * 1024 * 1024


def _credentials(generation: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(server config fields, client settings fields) turning auth on."""
    if generation == "0.9":
        return (
            {"client_id": CLIENT_ID, "client_secret": SecretStr(CLIENT_SECRET)},
            {"client_id": CLIENT_ID, "client_secret": SecretStr(CLIENT_SECRET)},
        )
    return {"api_key": SecretStr(API_KEY)}, {"api_key": SecretStr(API_KEY)}


@asynccontextmanager
async def rest_runtime(
    home: Path, generation: str, **server_fields: Any
) -> AsyncIterator[RestRuntime]:
    """A RestRuntime speaking ``generation`` to a strict server over bwrap in ``home``."""
    async with rest_stack(home, generation, **server_fields) as (runtime, _server):
        yield runtime


@asynccontextmanager
async def rest_stack(
    home: Path,
    generation: str,
    client_fields: dict[str, Any] | None = None,
    **server_fields: Any,
) -> AsyncIterator[tuple[RestRuntime, RunningServer]]:
    """``rest_runtime`` and the server behind it (for faults and violations).

    ``client_fields`` go to RestSettings (e.g. quicker backoff for fault tests).
    """
    server_auth, client_auth = _credentials(generation)
    fields: dict[str, Any] = {"backlog_bytes": BACKLOG_BYTES, **server_auth, **server_fields}
    config = ServerConfig(generation=generation, strict=True, **fields)  # type: ignore[arg-type]
    backend = BwrapRuntime(home=home, net_allow=NET_ALLOW)
    try:
        async with serve(backend, config) as server:
            settings = RestSettings(
                url=server.url,
                api=generation,  # type: ignore[arg-type]
                **client_auth,
                **(client_fields or {}),
            )
            runtime = RestRuntime(settings, secrets=SECRETS)
            try:
                yield runtime, server
            finally:
                await runtime.aclose()
            if server.violations:
                listed = "\n".join(f"- {violation}" for violation in server.violations[:20])
                raise AssertionError(
                    f"the BoxLite server (strict mode) saw OpenAPI violations:\n{listed}"
                )
    finally:
        await backend.aclose()


def _factory(generation: str) -> Callable[[Path], AbstractAsyncContextManager[Runtime]]:
    def factory(home: Path) -> AbstractAsyncContextManager[Runtime]:
        return rest_runtime(home, generation)

    return factory


FACTORIES = {"rest-0.9": _factory("0.9"), "rest-0.10": _factory("0.10")}
