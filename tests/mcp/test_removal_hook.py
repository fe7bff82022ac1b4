"""Whatever removes a box (box_remove, the idle reaper, a session's end, shutdown), its
Python sessions end with it: the registry's removal hook, as ``Services`` wires it,
over a real bwrap runtime and real interpreters in the box."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.types import BoxOptions
from boxlite_mcp.server.services import Services
from boxlite_mcp.sessions.registry import BoxEntry
from boxlite_mcp.settings import Settings

pytestmark = pytest.mark.anyio


async def _remove(services: Services, entry: BoxEntry) -> None:
    await services.registry.remove("alice", entry.id)


async def _reap(services: Services, entry: BoxEntry) -> None:
    services.registry.clock = lambda: entry.last_used + 10_000
    assert await services.registry.reap_round() == [entry.id]


async def _end_session(services: Services, entry: BoxEntry) -> None:
    await services.registry.end_session("s1")


async def _shutdown(services: Services, entry: BoxEntry) -> None:
    await services.registry.shutdown()


Removal = Callable[[Services, BoxEntry], Awaitable[None]]


@pytest.mark.parametrize("remove", [_remove, _reap, _end_session, _shutdown])
async def test_a_removed_box_takes_its_python_sessions_with_it(
    runtime: Runtime, remove: Removal
) -> None:
    services = Services.build(runtime, Settings())
    entry = await services.registry.create("alice", "s1", BoxOptions(), persist=False)
    kept = await services.registry.create("alice", None, BoxOptions(), persist=True)
    for box in (entry.box, kept.box):
        ran = await services.python.run(box, "x = 1", session="work")
        assert ran.error is None, ran
    assert services.python.names(entry.id) == ["work"]
    await remove(services, entry)
    assert services.python.names(entry.id) == []
    assert await services.registry.entry_by_id("alice", entry.id) is None
    # Only the removed box's sessions end.
    assert services.python.names(kept.id) == ["work"]
    await services.python.aclose()
