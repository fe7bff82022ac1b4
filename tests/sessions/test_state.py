"""The state store contract, run against both stores: in process, and a real redis-server.

"Two clients" are two handles on the same state: for the in-process store the one
object (one process has one), for Redis two connections, as two replicas have.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.sessions.state import (
    BoxRecord,
    ExecRecord,
    InProcessState,
    LimitReachedError,
    NameTakenError,
    OutputGapError,
    StateConfigError,
    StateStore,
    StateUnavailableError,
    execution_lease,
    open_state,
)
from tools.redislib.server import RedisServer

from .conftest import CAP, EVENTS_PER_STREAM, Connect, need_redis_server, redis_factory

pytestmark = pytest.mark.anyio


def _box(box_id: str, owner: str = "alice", name: str | None = None, **kw: object) -> BoxRecord:
    return BoxRecord(id=box_id, owner=owner, name=name, **kw)  # type: ignore[arg-type]


def _exec(exec_id: str, owner: str = "alice", running: bool = True) -> ExecRecord:
    return ExecRecord(
        id=exec_id,
        owner=owner,
        box_id="box-1",
        box_label="box-1",
        command="echo hi",
        timeout_seconds=30,
        running=running,
    )


async def _create(
    store: StateStore, box_id: str, owner: str = "alice", name: str | None = None
) -> BoxRecord:
    reservation = await store.reserve_box(owner, name, max_per_owner=3, max_total=5, ttl_seconds=30)
    record = _box(box_id, owner, name, last_used=time.time())
    await store.commit_box(reservation, record)
    return record


# -- boxes -----------------------------------------------------------------------


async def test_boxes_are_stored_listed_by_owner_and_removed_once(connect: Connect) -> None:
    a, b = connect(), connect()
    t0 = datetime.now(UTC)
    first = _box("b1", name="one", created_at=t0, persist=True, session="s1", last_used=10.0)
    second = _box("b2", created_at=t0 + timedelta(seconds=1), last_used=11.0)
    other = _box("b3", owner="bob", created_at=t0 - timedelta(seconds=1))
    for record in (second, first, other):
        reservation = await a.reserve_box(
            record.owner, record.name, max_per_owner=3, max_total=5, ttl_seconds=30
        )
        await a.commit_box(reservation, record)
    assert [r.id for r in await b.boxes("alice")] == ["b1", "b2"]
    assert [r.id for r in await b.boxes()] == ["b3", "b1", "b2"]
    assert await b.get_box("b1") == first
    assert await b.get_box("nope") is None
    removed = []
    async with anyio.create_task_group() as tg:
        for store in (a, b, a, b):

            async def remove(store: StateStore = store) -> None:
                removed.append(await store.remove_box("b1"))

            tg.start_soon(remove)
    assert sorted(removed) == [False, False, False, True]
    assert await a.get_box("b1") is None


async def test_limits_count_boxes_and_reservations_across_clients(connect: Connect) -> None:
    a, b = connect(), connect()
    results: list[str] = []

    async def reserve(store: StateStore) -> None:
        try:
            await store.reserve_box("alice", None, max_per_owner=3, max_total=5, ttl_seconds=30)
            results.append("ok")
        except LimitReachedError as exc:
            assert exc.scope == "owner" and exc.limit == 3 and exc.count == 3
            results.append("refused")

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(reserve, a if i % 2 else b)
    assert sorted(results) == ["ok"] * 3 + ["refused"] * 7
    await _create(a, "bob-1", owner="bob")
    with pytest.raises(LimitReachedError) as full:
        await b.reserve_box("carol", None, max_per_owner=3, max_total=4, ttl_seconds=30)
    assert (full.value.scope, full.value.count, full.value.limit) == ("total", 4, 4)


async def test_a_released_or_lapsed_reservation_frees_its_slot_and_name(connect: Connect) -> None:
    a, b = connect(), connect()
    held = await a.reserve_box("alice", "web", max_per_owner=1, max_total=5, ttl_seconds=30)
    with pytest.raises(NameTakenError):
        await b.reserve_box("alice", "web", max_per_owner=5, max_total=5, ttl_seconds=30)
    with pytest.raises(LimitReachedError):
        await b.reserve_box("alice", None, max_per_owner=1, max_total=5, ttl_seconds=30)
    # Another owner may use the same name.
    await b.reserve_box("bob", "web", max_per_owner=1, max_total=5, ttl_seconds=30)
    await a.release_box(held)
    short = await b.reserve_box("alice", "web", max_per_owner=1, max_total=5, ttl_seconds=0.5)
    assert short
    await anyio.sleep(0.8)  # its replica died mid-create: the slot comes back
    await a.reserve_box("alice", "web", max_per_owner=1, max_total=5, ttl_seconds=30)


async def test_a_committed_name_is_taken(connect: Connect) -> None:
    a, b = connect(), connect()
    await _create(a, "b1", name="web")
    with pytest.raises(NameTakenError) as taken:
        await b.reserve_box("alice", "web", max_per_owner=3, max_total=5, ttl_seconds=30)
    assert taken.value.name == "web"


async def test_replace_box_is_compare_and_set(connect: Connect) -> None:
    a, b = connect(), connect()
    adopted = _box("b1", owner="#unclaimed:abc", name="web", last_used=5.0)
    await a.put_box(adopted)
    claimed = adopted.model_copy(update={"owner": "alice"})
    await a.touch_box("b1", 7.0)  # a use in between does not make the claim stale
    assert await a.replace_box(adopted, claimed)
    assert not await b.replace_box(adopted, adopted.model_copy(update={"owner": "bob"}))
    stored = await b.get_box("b1")
    assert stored is not None and stored.owner == "alice" and stored.last_used == 7.0
    assert [r.id for r in await b.boxes("alice")] == ["b1"]  # the owner's index follows
    assert await b.boxes("#unclaimed:abc") == []
    await a.remove_box("b1")
    assert not await b.replace_box(claimed, claimed)  # never resurrects a removed box
    assert await b.get_box("b1") is None
    assert await b.boxes("alice") == []
    # A removed box no longer counts against its owner's limit.
    await b.reserve_box("alice", "web", max_per_owner=1, max_total=5, ttl_seconds=30)


async def test_touch_never_moves_last_use_back_nor_creates_a_box(connect: Connect) -> None:
    a, b = connect(), connect()
    await _create(a, "b1")
    now = time.time()
    await a.touch_box("b1", now + 10)
    await b.touch_box("b1", now + 5)
    record = await a.get_box("b1")
    assert record is not None and record.last_used == pytest.approx(now + 10)
    await b.touch_box("ghost", now)
    assert await a.get_box("ghost") is None


# -- executions and output ---------------------------------------------------------


async def test_executions_are_kept_per_owner_and_old_finished_ones_evicted(
    connect: Connect,
) -> None:
    a, b = connect(), connect()
    await a.put_execution(_exec("e0", running=True))  # running: never evicted
    for i in range(1, 4):
        await a.put_execution(_exec(f"e{i}", running=False))
        await a.append_output(f"e{i}", 0, "stdout", b"x")
    await a.put_execution(_exec("b1", owner="bob"))
    assert [r.id for r in await b.executions()] == ["e0", "e2", "e3", "b1"]
    assert [r.id for r in await b.executions("alice")] == ["e0", "e2", "e3"]
    assert await b.get_execution("e1") is None
    assert await b.read_output("e1", 0, 10) == []  # its output went with it
    assert await b.read_output("e2", 0, 10) == [("stdout", b"x")]
    finished = _exec("e0", running=False).model_copy(
        update={"exit_code": 3, "stdout_tail": b"\xff\x00tail", "duration_ms": 12}
    )
    await a.put_execution(finished)  # replacing keeps its place in the order
    assert await b.get_execution("e0") == finished
    assert [r.id for r in await b.executions("alice")] == ["e0", "e2", "e3"]


async def test_output_appends_at_offsets_without_gap_or_duplicate(connect: Connect) -> None:
    a, b = connect(), connect()
    await a.put_execution(_exec("e1"))
    assert (await a.append_output("e1", 0, "stdout", b"hello ")).total == 6
    retried = await b.append_output("e1", 0, "stdout", b"hello ")  # a retry: nothing new
    assert (retried.stored, retried.total) == (6, 6)
    overlap = await b.append_output("e1", 3, "stdout", b"lo world")  # half old, half new
    assert (overlap.stored, overlap.total) == (11, 11)
    await a.append_output("e1", 11, "stderr", b"\xffoops\x00")
    await a.append_output("e1", 17, "stdout", b"!")
    with pytest.raises(OutputGapError) as gap:
        await b.append_output("e1", 20, "stdout", b"late")
    assert (gap.value.offset, gap.value.total) == (20, 18)
    assert await b.read_output("e1", 0, 100) == [
        ("stdout", b"hello world"),
        ("stderr", b"\xffoops\x00"),
        ("stdout", b"!"),
    ]
    assert await a.read_output("e1", 9, 4) == [("stdout", b"ld"), ("stderr", b"\xffo")]
    assert await a.read_output("e1", 18, 10) == []
    assert await a.read_output("e1", 0, 0) == []
    size = await b.output_size("e1")
    assert (size.stored, size.total, size.dropped) == (18, 18, 0)


async def test_a_takeover_reattached_from_an_earlier_offset_stores_each_byte_once(
    connect: Connect,
) -> None:
    first, second = connect(), connect()
    await first.put_execution(_exec("e1"))
    produced = b"".join(f"line {i}\n".encode() for i in range(6))  # 42 bytes
    await first.append_output("e1", 0, "stdout", produced[:20])  # then the replica dies
    resume = (await second.output_size("e1")).total
    backlog_from = resume - 7  # the runtime's backlog starts before what is stored
    await second.append_output("e1", backlog_from, "stdout", produced[backlog_from:30])
    await second.append_output("e1", 30, "stdout", produced[30:])
    pieces = await first.read_output("e1", 0, 1000)
    assert b"".join(data for _, data in pieces) == produced


async def test_output_beyond_the_cap_is_counted_not_kept(connect: Connect) -> None:
    a = connect()
    await a.put_execution(_exec("e1"))
    await a.append_output("e1", 0, "stdout", b"a" * 50)
    size = await a.append_output("e1", 50, "stderr", b"b" * 30)
    assert (size.stored, size.total, size.dropped) == (CAP, 80, 80 - CAP)
    size = await a.append_output("e1", 80, "stdout", b"c" * 10)
    assert (size.stored, size.total) == (CAP, 90)
    assert await a.read_output("e1", 0, 1000) == [("stdout", b"a" * 50), ("stderr", b"b" * 14)]


async def test_wait_output_wakes_on_another_clients_append_and_on_the_end(
    connect: Connect,
) -> None:
    reader, writer = connect(), connect()
    await writer.put_execution(_exec("e1"))
    woke: list[float] = []

    async def wait(cursor: int) -> None:
        start = time.monotonic()
        with anyio.fail_after(5):
            await reader.wait_output("e1", cursor)
        woke.append(time.monotonic() - start)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, 0)
        await anyio.sleep(0.2)
        await writer.append_output("e1", 0, "stdout", b"x")
    assert woke and woke[0] >= 0.15
    with anyio.move_on_after(0.2) as bounded:  # nothing new: the caller's bound ends it
        await reader.wait_output("e1", 1)
    assert bounded.cancelled_caught
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, 1)
        await anyio.sleep(0.1)
        await writer.put_execution(_exec("e1", running=False))
    with anyio.fail_after(1):
        await reader.wait_output("unknown", 0)


# -- resumable-stream events ----------------------------------------------------


async def test_events_replay_after_an_id_only_for_its_stream(connect: Connect) -> None:
    a, b = connect(), connect()
    priming = await a.store_event("s1", None)
    one = await a.store_event("s1", b'{"n":1}')
    await b.store_event("s2", b'{"other":true}')
    two = await b.store_event("s1", b'{"n":2}')
    replay = await b.events_after(priming)
    assert replay == ("s1", [(one, b'{"n":1}'), (two, b'{"n":2}')])
    assert await a.events_after(two) == ("s1", [])
    for bad in ("", "nonsense", "s1/", "/1", "s9/1-0", "s9/1", "s1/999999999999-0"):
        assert await a.events_after(bad) is None, bad


async def test_old_events_are_evicted_per_stream(connect: Connect) -> None:
    a = connect()
    ids = [await a.store_event("s1", f"{i}".encode()) for i in range(EVENTS_PER_STREAM + 2)]
    assert await a.events_after(ids[0]) is None  # evicted: nothing to resume from
    replay = await a.events_after(ids[2])
    assert replay is not None
    assert [payload for _, payload in replay[1]] == [
        f"{i}".encode() for i in range(3, EVENTS_PER_STREAM + 2)
    ]


# -- leases ----------------------------------------------------------------------


async def test_a_lease_is_exclusive_across_clients(connect: Connect) -> None:
    a, b = connect(), connect()
    won: list[str] = []

    async def grab(store: StateStore, holder: str) -> None:
        if await store.acquire_lease("reaper", holder, 30):
            won.append(holder)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(grab, a if i % 2 else b, f"replica-{i}")
    assert len(won) == 1
    holder = won[0]
    assert await a.lease_holder("reaper") == holder
    assert await b.acquire_lease("reaper", holder, 30)  # its holder extends it
    assert not await b.renew_lease("reaper", "intruder", 30)
    assert not await b.release_lease("reaper", "intruder")
    assert await a.lease_holder("reaper") == holder
    assert await b.release_lease("reaper", holder)
    assert await a.lease_holder("reaper") is None
    assert await a.acquire_lease("reaper", "replica-x", 30)


async def test_a_lapsed_lease_passes_to_another_holder(connect: Connect) -> None:
    a, b = connect(), connect()
    lease = execution_lease("exec-1")
    assert await a.acquire_lease(lease, "replica-a", 1.0)
    assert not await b.acquire_lease(lease, "replica-b", 30)
    assert await a.renew_lease(lease, "replica-a", 1.0)
    await anyio.sleep(1.3)  # replica-a died: it renews no more
    assert await b.lease_holder(lease) is None
    assert await b.acquire_lease(lease, "replica-b", 30)
    assert not await a.renew_lease(lease, "replica-a", 0.3)  # the old holder learns it lost
    assert not await a.release_lease(lease, "replica-a")
    assert await a.lease_holder(lease) == "replica-b"


# -- choosing a store, and Redis going away ------------------------------------------


def test_open_state_picks_the_store_and_explains_bad_urls() -> None:
    assert isinstance(open_state(None), InProcessState)
    assert isinstance(open_state("memory"), InProcessState)
    # Whether replicas share it (a stopping replica hands its work over) is the
    # store's to say: only Redis is shared.
    assert open_state(None).shared is False
    assert open_state("redis://127.0.0.1:1/0").shared is True
    with pytest.raises(StateConfigError) as bad:
        open_state("postgres://db/1")
    assert "expected 'memory' or a Redis URL" in str(bad.value)
    assert "not a postgres URL" in str(bad.value)
    with pytest.raises(StateConfigError) as bare:
        open_state("localhost:6379")
    assert "value without a scheme" in str(bare.value)


async def test_the_redis_url_is_described_without_credentials() -> None:
    pytest.importorskip("redis")
    store = open_state("redis://user:s3cret-pass@127.0.0.1:1/2")
    try:
        assert store.description == "redis://127.0.0.1:1/2"
        with pytest.raises(StateUnavailableError) as down:
            await store.ping()
        assert "s3cret" not in str(down.value)
        assert "redis://127.0.0.1:1/2" in str(down.value)
    finally:
        await store.aclose()


async def test_redis_restarted_mid_run_fails_clearly_then_works_with_nothing_lost(
    tmp_path: Path,
) -> None:
    need_redis_server()
    with RedisServer(tmp_path / "redis") as server:
        connect, made = redis_factory(server.url)
        store = connect()
        try:
            await _create(store, "b1", name="web")
            await store.put_execution(_exec("e1"))
            await store.append_output("e1", 0, "stdout", b"before ")
            assert await store.acquire_lease("reaper", "replica-a", 60)
            server.stop()
            calls = [
                lambda: store.boxes("alice"),
                lambda: store.append_output("e1", 7, "stdout", b"during "),
                lambda: store.acquire_lease("reaper", "replica-b", 60),
                lambda: store.reserve_box(
                    "alice", None, max_per_owner=3, max_total=5, ttl_seconds=30
                ),
            ]
            for call in calls:
                start = time.monotonic()
                with pytest.raises(StateUnavailableError) as down:
                    await call()
                assert time.monotonic() - start < 10
                message = str(down.value)
                assert server.url in message and "Retry in a moment" in message
            server.start()
            assert [r.name for r in await store.boxes("alice")] == ["web"]
            size = await store.append_output("e1", 7, "stdout", b"after")
            assert size.total == 12
            assert await store.read_output("e1", 0, 100) == [("stdout", b"before after")]
            assert await store.lease_holder("reaper") == "replica-a"
            assert not await store.acquire_lease("reaper", "replica-b", 60)
            other = connect()
            assert [r.id for r in await other.executions("alice")] == ["e1"]
        finally:
            for made_store in made:
                await made_store.aclose()
