"""Fixtures for tests/sessions: both state stores (in-process, and Redis in a real redis-server),
and for the Python session engine a bwrap runtime in tmp_path, a box and the engine."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions
from boxlite_mcp.sessions.python import PythonLimits, PythonSessions
from boxlite_mcp.sessions.state import InProcessState, StateStore
from tests.harness.bwrap import factory
from tools.redislib.server import RedisServer, missing_reason, redis_required, redis_server_binary

KEPT = 4
CAP = 64
EVENTS_PER_STREAM = 5

#: A new handle on the test's state: what a second replica would open.
Connect = Callable[[], StateStore]


def need_redis_server() -> None:
    """Skip without redis-server, unless BOXLITE_MCP_REQUIRE_REDIS makes it a failure."""
    if redis_server_binary() is None:
        if redis_required():
            pytest.fail(missing_reason())
        pytest.skip(missing_reason())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def redis_factory(url: str) -> tuple[Connect, list[StateStore]]:
    from boxlite_mcp.sessions.state.redis_store import RedisState

    prefix = f"t{secrets.token_hex(4)}:"  # each test its own keys on the shared server
    made: list[StateStore] = []

    def connect() -> StateStore:
        store = RedisState(
            url,
            prefix=prefix,
            max_executions_kept=KEPT,
            stored_output_cap_bytes=CAP,
            events_per_stream=EVENTS_PER_STREAM,
        )
        made.append(store)
        return store

    return connect, made


@pytest.fixture(params=["in_process", "redis"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Connect]:
    if request.param == "in_process":
        shared = InProcessState(
            max_executions_kept=KEPT,
            stored_output_cap_bytes=CAP,
            events_per_stream=EVENTS_PER_STREAM,
        )
        yield lambda: shared
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    factory, made = redis_factory(server.url)
    yield factory
    for store in made:
        await store.aclose()


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
