"""Takeover of a running execution, at the session layer: two ``Executions`` (two
replicas) over one state store, each with its own REST runtime to one BoxLite test
server (real bwrap boxes), on both stores.

A replica that died is simulated by what it leaves behind: a running record, the
output it stored, and no lease holder (or, for control requests, a live follower
on the other ``Executions``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from boxlite_mcp.sessions.executions import Executions, ExecView
from boxlite_mcp.sessions.state import ExecRecord, InProcessState, StateStore, execution_lease
from tests.harness.bwrap import factory as bwrap_factory
from tools.boxlite_server import RunningServer, ServerConfig, serve
from tools.redislib.server import RedisServer

pytestmark = pytest.mark.anyio

LEASE = 0.6
SCRIPT = 'for i in 1 2 3 4 5 6 7 8; do echo "out $i"; echo "err $i" >&2; sleep 0.1; done'
WHOLE_OUT = b"".join(f"out {i}\n".encode() for i in range(1, 9))
WHOLE_ERR = b"".join(f"err {i}\n".encode() for i in range(1, 9))

MakeState = Callable[[], StateStore]


@pytest.fixture(params=["in_process", "redis"])
async def make_state(request: pytest.FixtureRequest) -> AsyncIterator[MakeState]:
    if request.param == "in_process":
        shared = InProcessState()
        yield lambda: shared
        return
    from boxlite_mcp.sessions.state.redis_store import RedisState

    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t{secrets.token_hex(4)}:"
    made: list[RedisState] = []

    def make() -> StateStore:
        made.append(RedisState(server.url, prefix=prefix))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
async def boxlite(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with bwrap_factory(tmp_path) as runtime, serve(runtime, ServerConfig()) as running:
        yield running


def rest(server: RunningServer) -> RestRuntime:
    return RestRuntime(RestSettings(url=server.url, backoff_initial=0.01, backoff_max=0.05))


def executions(state: StateStore, runtime: Runtime, holder: str) -> Executions:
    return Executions(
        state=state,
        runtime=runtime,
        max_running=8,
        result_cap_bytes=16 * 1024,
        holder=holder,
        lease_seconds=LEASE,
    )


async def orphan(
    state: StateStore, runtime: Runtime, command: str, *, stored: int = 12
) -> ExecRecord:
    """What a follower that died mid-run leaves: a running record, the output it had
    stored (``stored`` bytes of each stream at least), and a lease that lapsed."""
    box = await runtime.create(BoxOptions())
    execution = await box.exec(ExecRequest(command="sh", args=["-c", command], timeout_seconds=30))
    record = ExecRecord(
        id=f"exec-{secrets.token_hex(4)}",
        owner="alice",
        box_id=box.id,
        box_label=box.id,
        command=command,
        timeout_seconds=30,
        runtime_execution_id=execution.id,
    )
    await state.put_execution(record)
    offsets = {"stdout": 0, "stderr": 0}
    if not stored:
        return record
    async for chunk in execution.output():
        await state.append_stream(record.id, chunk.stream, offsets[chunk.stream], chunk.data)
        offsets[chunk.stream] += len(chunk.data)
        if min(offsets.values()) >= stored:
            break
    return record


async def whole(state: StateStore, execution_id: str) -> tuple[bytes, bytes]:
    pieces = await state.read_output(execution_id, 0, 1 << 20)
    out = b"".join(d for s, d in pieces if s == "stdout")
    err = b"".join(d for s, d in pieces if s == "stderr")
    return out, err


async def ended(mine: Executions, view: ExecView) -> ExecView:
    with anyio.fail_after(20):
        await mine.wait(view.id, 0, until_exit=True)
    return await mine.get(view.owner, view.id)


async def test_a_reader_takes_over_an_orphan_and_completes_its_output(
    make_state: MakeState, boxlite: RunningServer
) -> None:
    async with rest(boxlite) as dead_runtime, rest(boxlite) as runtime:
        record = await orphan(make_state(), dead_runtime, SCRIPT)
        state = make_state()
        mine = executions(state, runtime, "replica-b")
        async with anyio.create_task_group() as group:
            await group.start(mine.run_sweeper, group)
            view = await mine.get("alice", record.id)  # finds it unfollowed: takes it over
            assert mine.followed(record.id) is not None
            assert await state.lease_holder(execution_lease(record.id)) == "replica-b"
            view = await ended(mine, view)
            group.cancel_scope.cancel()
        assert (view.running, view.exit_code, view.error) == (False, 0, None)
        assert await whole(state, record.id) == (WHOLE_OUT, WHOLE_ERR)
        assert (view.record.stdout_total, view.record.stderr_total) == (
            len(WHOLE_OUT),
            len(WHOLE_ERR),
        )


async def test_the_sweep_takes_over_with_no_reader(
    make_state: MakeState, boxlite: RunningServer
) -> None:
    async with rest(boxlite) as dead_runtime, rest(boxlite) as runtime:
        record = await orphan(make_state(), dead_runtime, SCRIPT)
        state = make_state()
        mine = executions(state, runtime, "replica-b")
        async with anyio.create_task_group() as group:
            await group.start(mine.run_sweeper, group)
            with anyio.fail_after(20):
                # Polls the store, as a client would: a reader would take over itself.
                while (stored := await state.get_execution(record.id)) and stored.running:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()
        assert stored is not None and stored.exit_code == 0
        assert await whole(state, record.id) == (WHOLE_OUT, WHOLE_ERR)


async def test_a_held_lease_is_not_taken(make_state: MakeState, boxlite: RunningServer) -> None:
    async with rest(boxlite) as dead_runtime, rest(boxlite) as runtime:
        state = make_state()
        record = await orphan(state, dead_runtime, "sleep 5", stored=0)
        await state.acquire_lease(execution_lease(record.id), "replica-a", 30)
        mine = executions(make_state(), runtime, "replica-b")
        async with anyio.create_task_group() as group:
            await group.start(mine.run_sweeper, group)
            await anyio.sleep(LEASE)  # a sweep has run
            view = await mine.get("alice", record.id)
            group.cancel_scope.cancel()
        assert view.running and mine.followed(record.id) is None
        assert await state.lease_holder(execution_lease(record.id)) == "replica-a"


async def test_an_orphan_where_the_runtime_cannot_attach_ends_with_a_clear_error(
    make_state: MakeState, tmp_path: Path
) -> None:
    runtime = BwrapRuntime(home=tmp_path / "bwrap")
    try:
        state = make_state()
        record = await orphan(state, runtime, "sleep 3", stored=0)
        mine = executions(state, runtime, "replica-b")
        async with anyio.create_task_group() as group:
            await group.start(mine.run_sweeper, group)
            view = await mine.get("alice", record.id)
            group.cancel_scope.cancel()
        assert not view.running and view.error is not None
        assert "no other could follow it again" in view.error
        assert "bwrap runtime cannot re-attach" in view.error
    finally:
        await runtime.aclose()


async def test_control_from_another_replica_reaches_the_follower(
    make_state: MakeState, boxlite: RunningServer
) -> None:
    async with rest(boxlite) as runtime_a, rest(boxlite) as runtime_b:
        a = executions(make_state(), runtime_a, "replica-a")
        b = executions(make_state(), runtime_b, "replica-b")
        box = await runtime_a.create(BoxOptions())
        async with anyio.create_task_group() as group:
            execution = await box.exec(ExecRequest(command="cat"))
            follower = await a.start(
                owner="alice",
                box_id=box.id,
                box_label=box.id,
                command="cat",
                execution=execution,
                timeout_seconds=30,
                task_group=group,
                on_exit=lambda: None,
            )
            view = await b.get("alice", follower.id)
            assert b.followed(view.id) is None  # a's lease is live: b passes control on
            await b.write_stdin(view, b"through b\n")
            with anyio.fail_after(10):
                await b.wait(view.id, 0, until_exit=False)
            await b.kill(view)
            view = await b.wait_end(view, 10)
            group.cancel_scope.cancel()
        assert not view.running and view.killed
        assert await whole(a.state, view.id) == (b"through b\n", b"")


async def test_a_stopping_replica_hands_over_with_a_shared_store_and_kills_without(
    make_state: MakeState, boxlite: RunningServer
) -> None:
    async with rest(boxlite) as runtime_a, rest(boxlite) as runtime_b:
        a = executions(make_state(), runtime_a, "replica-a")
        b = executions(make_state(), runtime_b, "replica-b")
        box = await runtime_a.create(BoxOptions())
        async with anyio.create_task_group() as stopping:
            execution = await box.exec(ExecRequest(command="sh", args=["-c", SCRIPT]))
            follower = await a.start(
                owner="alice",
                box_id=box.id,
                box_label=box.id,
                command=SCRIPT,
                execution=execution,
                timeout_seconds=30,
                task_group=stopping,
                on_exit=lambda: None,
            )
            with anyio.fail_after(10):
                await follower.wait_beyond(12)
            await a.kill_all()  # what the server's shutdown does
            stopping.cancel_scope.cancel()
        async with anyio.create_task_group() as group:
            await group.start(b.run_sweeper, group)
            view = await ended(b, await b.get("alice", follower.id))
            group.cancel_scope.cancel()
        if a.shared:  # handed over: b re-attached at once (no lease to wait for)
            assert (view.exit_code, view.killed, view.error) == (0, False, None)
            assert await whole(b.state, view.id) == (WHOLE_OUT, WHOLE_ERR)
        else:
            assert view.killed and not view.running
