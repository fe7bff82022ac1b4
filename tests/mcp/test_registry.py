"""The owner registry on its own, over a real bwrap runtime: each rule of ``Registry``.

``test_owners`` checks ownership through the MCP tools; these tests call the
registry directly and pin down what a broken rule would let through (issue 14):
adoption after a restart with two owners' boxes and a box this server did not
name, reservations for creates in flight at the per-owner and total limits, the
exact name-length limit, ``touch_id``, and the idle clock.

Where a test needs the runtime to fail (a listing error, a box that vanishes
between listing and lookup, a removal that fails), ``FaultyRuntime`` makes the
real bwrap runtime do so; the registry under test is never replaced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    BoxliteError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from boxlite_mcp.runtime.types import BoxInfo, BoxOptions
from boxlite_mcp.sessions import naming
from boxlite_mcp.sessions.registry import BoxEntry, Registry
from boxlite_mcp.sessions.state import REAPER_LEASE, InProcessState
from boxlite_mcp.settings import Settings

pytestmark = pytest.mark.anyio

TTL = 1800.0


class FaultyRuntime(BwrapRuntime):
    """The bwrap runtime with faults switched on by a test."""

    fail_list: BoxliteError | None = None
    #: Box ids another replica removes right after this runtime lists them.
    vanish_after_list: frozenset[str] = frozenset()
    fail_remove: Exception | None = None
    #: Set after each removal attempt (failed or not); a test may replace it.
    removal_tried: anyio.Event | None = None

    async def list(self) -> list[BoxInfo]:
        if self.fail_list is not None:
            raise self.fail_list
        infos = await super().list()
        for box_id in self.vanish_after_list:
            await super().remove(box_id, force=True)
        return infos

    async def remove(self, box: str, force: bool = False) -> None:
        try:
            if self.fail_remove is not None:
                raise self.fail_remove
            await super().remove(box, force=force)
        finally:
            if self.removal_tried is not None:
                self.removal_tried.set()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[FaultyRuntime]:
    rt = FaultyRuntime(home=tmp_path / "home")
    try:
        yield rt
    finally:
        await rt.aclose()


async def out_of_band(runtime: BwrapRuntime, runtime_name: str) -> Box:
    """A box made in the runtime without this registry (an earlier run, another replica)."""
    return await runtime.create(BoxOptions(name=runtime_name))


class Clock:
    """A wall clock the test moves on (the registry's idle clock)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def last_used(registry: Registry, box_id: str) -> float:
    """The box's last use as the store keeps it (what every replica's reaper reads)."""
    record = await registry.state.get_box(box_id)
    assert record is not None
    return record.last_used


def names(entries: list[BoxEntry]) -> list[str]:
    return [e.name or "" for e in entries]


class Gate:
    """Holds creations in flight: ``make`` waits until the test opens the gate."""

    def __init__(self, runtime: BwrapRuntime, expected: int) -> None:
        self.runtime = runtime
        self.expected = expected
        self.waiting = 0
        self.all_waiting = anyio.Event()
        self.open = anyio.Event()

    async def make(self, runtime_name: str) -> Box:
        self.waiting += 1
        if self.waiting == self.expected:
            self.all_waiting.set()
        await self.open.wait()
        return await self.runtime.create(BoxOptions(name=runtime_name))


# -- adoption after a restart ------------------------------------------------


async def test_restart_adopts_each_owners_boxes_for_that_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = BwrapRuntime(home=home)
    before = Registry(first, Settings())
    alice_dev = await before.create("alice", None, BoxOptions(name="dev"), persist=True)
    bob_dev = await before.create("bob", None, BoxOptions(name="dev"), persist=True)
    alice_tmp = await before.create("alice", "s1", BoxOptions(), persist=False)
    foreign = await first.create(BoxOptions(name="my-own-box"))
    lookalike = await first.create(BoxOptions(name="mcp.not-a-hash.p.dev"))
    created = {info.id: info.created_at for info in await first.list()}
    await first.aclose()  # the server stops; the boxes stay on disk

    runtime = BwrapRuntime(home=home)
    try:
        after = Registry(runtime, Settings())
        assert await after.adopt_at_startup() == 3
        assert await after.total() == 3
        assert await after.adopt_at_startup() == 0  # already known: not adopted twice
        assert await after.total() == 3

        alices = await after.owned_by("alice")
        assert [e.id for e in alices] == [alice_dev.id, alice_tmp.id]  # by creation time
        assert [(e.name, e.persist, e.session) for e in alices] == [
            ("dev", True, None),
            (None, False, None),
        ]
        assert [e.created_at for e in alices] == [created[alice_dev.id], created[alice_tmp.id]]
        bobs = await after.owned_by("bob")
        assert [(e.id, e.name, e.persist) for e in bobs] == [(bob_dev.id, "dev", True)]
        assert (await after.resolve("bob", "dev")).id == bob_dev.id
        assert (await after.resolve("alice", "dev")).id == alice_dev.id

        # Nobody gets another owner's box, nor the boxes this server did not name.
        for owner, ref in [
            ("alice", bob_dev.id),
            ("bob", alice_tmp.id),
            ("carol", "dev"),
            ("carol", alice_dev.id),
            ("alice", foreign.id),
            ("alice", "my-own-box"),
            ("alice", lookalike.id),
        ]:
            with pytest.raises(NotFoundError):
                await after.resolve(owner, ref)
        assert await after.owned_by("carol") == []
        assert await after.total() == 3
        assert {i.id for i in await runtime.list()} >= {foreign.id, lookalike.id}
    finally:
        await runtime.aclose()


async def test_adopted_boxes_wait_unclaimed_until_their_owner_asks(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    box = await out_of_band(runtime, naming.runtime_name("alice", "dev", persist=False))
    registry = Registry(runtime, Settings())
    with caplog.at_level(logging.INFO, logger="boxlite_mcp.sessions.registry"):
        assert await registry.adopt_at_startup() == 1
    assert "adopted 1 boxes left by an earlier run" in caplog.text
    # Before alice shows up the box is nobody's: not even an id lookup reaches it.
    assert await registry.entry_by_id("alice", box.id) is None
    assert await registry.owned_by("bob") == []
    assert names(await registry.owned_by("alice")) == ["dev"]
    entry = await registry.entry_by_id("alice", box.id)
    assert entry is not None and entry.owner == "alice" and not entry.persist


async def test_a_box_of_another_run_is_adopted_on_first_use_by_its_owner_only(
    runtime: FaultyRuntime,
) -> None:
    """Without adopt_at_startup (a box made by another replica), resolve finds it lazily."""
    alice_box = await out_of_band(runtime, naming.runtime_name("alice", "dev", persist=True))
    bob_box = await out_of_band(runtime, naming.runtime_name("bob", "dev", persist=False))
    await out_of_band(runtime, "my-own-box")
    registry = Registry(runtime, Settings())

    # Not by another owner, whether asked by id or by name.
    for owner, ref in [("bob", alice_box.id), ("carol", "dev"), ("alice", "my-own-box")]:
        with pytest.raises(NotFoundError):
            await registry.resolve(owner, ref)
    assert await registry.total() == 0

    by_name = await registry.resolve("alice", "dev")
    assert (by_name.id, by_name.owner, by_name.name, by_name.persist) == (
        alice_box.id,
        "alice",
        "dev",
        True,
    )
    by_id = await registry.resolve("bob", bob_box.id)
    assert (by_id.owner, by_id.name, by_id.persist) == ("bob", "dev", False)
    assert await registry.total() == 2
    # Known now: a second lookup finds the same entry, not a second adoption.
    assert (await registry.resolve("alice", alice_box.id)).id == by_name.id


async def test_an_unnamed_box_of_another_run_is_found_by_id(runtime: FaultyRuntime) -> None:
    box = await out_of_band(runtime, naming.runtime_name("alice", None, persist=False))
    registry = Registry(runtime, Settings())
    entry = await registry.resolve("alice", box.id)
    assert entry.id == box.id and entry.name is None
    assert entry.label == box.id


async def test_adoption_survives_a_runtime_that_cannot_list(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    await out_of_band(runtime, naming.runtime_name("alice", "dev", persist=True))
    runtime.fail_list = InvalidStateError("the runtime is busy")
    registry = Registry(runtime, Settings())
    with caplog.at_level(logging.WARNING, logger="boxlite_mcp.sessions.registry"):
        assert await registry.adopt_at_startup() == 0
    assert "could not list runtime boxes at startup: InvalidStateError" in caplog.text
    with pytest.raises(NotFoundError):
        await registry.resolve("alice", "dev")
    runtime.fail_list = None
    assert (await registry.resolve("alice", "dev")).name == "dev"


async def test_a_box_that_vanishes_between_listing_and_lookup_is_skipped(
    runtime: FaultyRuntime,
) -> None:
    gone = await out_of_band(runtime, naming.runtime_name("alice", "gone", persist=True))
    kept = await out_of_band(runtime, naming.runtime_name("alice", "kept", persist=True))
    runtime.vanish_after_list = frozenset({gone.id})
    registry = Registry(runtime, Settings())
    assert await registry.adopt_at_startup() == 1
    assert [e.id for e in await registry.owned_by("alice")] == [kept.id]

    again = await out_of_band(runtime, naming.runtime_name("alice", "again", persist=True))
    runtime.vanish_after_list = frozenset({again.id})
    with pytest.raises(NotFoundError):
        await Registry(runtime, Settings()).resolve("alice", "again")


async def test_startup_adoption_goes_past_foreign_and_known_boxes(runtime: FaultyRuntime) -> None:
    """Boxes it may not adopt, listed first, do not stop the scan of the rest."""
    registry = Registry(runtime, Settings())
    known = await registry.create("alice", None, BoxOptions(name="known"), persist=True)
    await out_of_band(runtime, "my-own-box")
    later = await out_of_band(runtime, naming.runtime_name("alice", "later", persist=True))
    order = [i.id for i in await runtime.list()]
    assert order[0] == known.id  # listed in creation order: the known box comes first
    assert await registry.adopt_at_startup() == 1
    assert [e.id for e in await registry.owned_by("alice")] == [known.id, later.id]


async def test_lazy_adoption_takes_the_box_asked_for(runtime: FaultyRuntime) -> None:
    first = await out_of_band(runtime, naming.runtime_name("alice", "one", persist=True))
    second = await out_of_band(runtime, naming.runtime_name("alice", "two", persist=True))
    registry = Registry(runtime, Settings())
    assert (await registry.resolve("alice", "two")).id == second.id
    assert await registry.total() == 1
    assert (await registry.resolve("alice", first.id)).name == "one"
    with pytest.raises(NotFoundError):
        await registry.resolve("alice", "three")
    assert await registry.total() == 2


# -- limits and reservations -------------------------------------------------


async def test_concurrent_creates_count_against_the_per_owner_limit(
    runtime: FaultyRuntime,
) -> None:
    """Creations in flight are reserved: a third concurrent create at a limit of 2 fails."""
    registry = Registry(runtime, Settings(max_boxes_per_owner=2))
    gate = Gate(runtime, expected=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(registry.add_created, "alice", None, "one", False, gate.make)
        tg.start_soon(registry.add_created, "alice", None, "two", False, gate.make)
        await gate.all_waiting.wait()
        with pytest.raises(InvalidArgumentError) as caught:
            await registry.create("alice", None, BoxOptions(name="three"), persist=False)
        assert caught.value.message == (
            "You already have 2 boxes, the most one owner may have (2). "
            "Remove one with box_remove first."
        )
        # The limit is per owner: bob is not held up by alice's creations.
        bob = await registry.create("bob", None, BoxOptions(name="one"), persist=False)
        gate.open.set()
    assert sorted(names(await registry.owned_by("alice"))) == ["one", "two"]
    assert names(await registry.owned_by("bob")) == ["one"]
    assert bob.owner == "bob"
    # Finished creations are boxes now, no longer reservations: still exactly 2.
    with pytest.raises(InvalidArgumentError, match="You already have 2 boxes"):
        await registry.create("alice", None, BoxOptions(), persist=False)
    await registry.remove("alice", "one")
    assert (await registry.create("alice", None, BoxOptions(), persist=False)).owner == "alice"


async def test_concurrent_creates_count_against_the_total_limit(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings(max_boxes_total=2))
    gate = Gate(runtime, expected=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(registry.add_created, "alice", None, None, False, gate.make)
        tg.start_soon(registry.add_created, "bob", None, None, False, gate.make)
        await gate.all_waiting.wait()
        with pytest.raises(InvalidStateError) as caught:
            await registry.create("carol", None, BoxOptions(), persist=False)
        assert caught.value.message == (
            "This server is at its limit of 2 boxes in total. "
            "Remove a box you no longer need, or try again later."
        )
        gate.open.set()
    assert await registry.total() == 2


async def test_exactly_the_limits_fit_one_create_after_another(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings(max_boxes_per_owner=3, max_boxes_total=4))
    for _ in range(3):
        await registry.create("alice", None, BoxOptions(), persist=False)
    with pytest.raises(InvalidArgumentError, match=r"You already have 3 boxes.*\(3\)"):
        await registry.create("alice", None, BoxOptions(), persist=False)
    await registry.create("bob", None, BoxOptions(), persist=False)
    with pytest.raises(InvalidStateError, match="limit of 4 boxes in total"):
        await registry.create("bob", None, BoxOptions(), persist=False)
    assert await registry.total() == 4


async def test_a_failed_create_gives_its_reservation_back(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings(max_boxes_per_owner=2, max_boxes_total=2))

    async def broken_make(runtime_name: str) -> Box:
        raise InvalidStateError("the runtime refused")

    for _ in range(3):  # more failures than the limit: none of them is kept
        with pytest.raises(InvalidStateError, match="the runtime refused"):
            await registry.add_created("alice", None, "x", False, broken_make)
        with pytest.raises(InvalidArgumentError, match="at most 100 characters"):
            await registry.create("alice", None, BoxOptions(name="n" * 101), persist=False)
    await registry.create("alice", None, BoxOptions(name="a"), persist=False)
    await registry.create("alice", None, BoxOptions(name="b"), persist=False)
    assert await registry.total() == 2


async def test_one_owners_two_creates_in_flight_both_finish(runtime: FaultyRuntime) -> None:
    """The second creation to finish releases a reservation the first did not delete."""
    registry = Registry(runtime, Settings(max_boxes_per_owner=3))
    first, second = Gate(runtime, expected=1), Gate(runtime, expected=1)
    first_done = anyio.Event()

    async def create_first() -> None:
        await registry.add_created("alice", None, "a", False, first.make)
        first_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(create_first)
        await first.all_waiting.wait()
        tg.start_soon(registry.add_created, "alice", None, "b", False, second.make)
        await second.all_waiting.wait()
        first.open.set()
        await first_done.wait()
        second.open.set()
    assert sorted(names(await registry.owned_by("alice"))) == ["a", "b"]
    await registry.create("alice", None, BoxOptions(name="c"), persist=False)


# -- names -------------------------------------------------------------------


async def test_box_names_have_at_most_100_characters(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings())
    longest = "n" * naming.MAX_NAME_LENGTH
    assert naming.MAX_NAME_LENGTH == 100
    assert registry.runtime_name("alice", longest, True) == naming.runtime_name(
        "alice", longest, persist=True
    )
    with pytest.raises(InvalidArgumentError) as caught:
        registry.runtime_name("alice", longest + "n", True)
    assert caught.value.message == "A box name has at most 100 characters."
    entry = await registry.create("alice", None, BoxOptions(name=longest), persist=False)
    assert entry.name == longest
    with pytest.raises(InvalidArgumentError, match="at most 100 characters"):
        await registry.create("alice", None, BoxOptions(name=longest + "n"), persist=False)
    assert await registry.total() == 1


async def test_created_boxes_carry_the_reserved_runtime_name(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings())
    entry = await registry.create(
        "alice", "s1", BoxOptions(name="dev", env={"A": "1"}), persist=True
    )
    assert (entry.owner, entry.name, entry.persist, entry.session) == ("alice", "dev", True, "s1")
    info = await entry.box.info()
    assert info.name == naming.runtime_name("alice", "dev", persist=True)
    assert entry.label == f"dev ({entry.id})"
    unnamed = await registry.create("alice", None, BoxOptions(), persist=False)
    parsed = naming.parse((await unnamed.box.info()).name)
    assert parsed is not None and parsed.name is None and not parsed.persist


async def never_made(runtime_name: str) -> Box:
    raise AssertionError(f"{runtime_name} was made although its name is taken")


async def test_names_are_per_owner_and_unique_within_one(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings())
    await registry.create("alice", None, BoxOptions(name="dev"), persist=False)
    await registry.create("bob", None, BoxOptions(name="dev"), persist=False)
    for attempt in (
        registry.create("alice", None, BoxOptions(name="dev"), persist=True),
        registry.add_created("alice", None, "dev", False, never_made),
    ):
        with pytest.raises(AlreadyExistsError) as caught:
            await attempt
        assert caught.value.message == (
            "You already have a box named 'dev'. Use it, remove it, or pick another name."
        )
    # Unnamed boxes never clash.
    await registry.create("alice", None, BoxOptions(), persist=False)
    await registry.create("alice", None, BoxOptions(), persist=False)
    assert await registry.total() == 4


async def test_a_name_being_created_is_taken(runtime: FaultyRuntime) -> None:
    """Two concurrent creates of one name by one owner: the second is refused at once.

    The runtime cannot catch it: a persistent and an ephemeral box get different
    runtime names, so without the registry's check the owner would get two "dev" boxes.
    """
    registry = Registry(runtime, Settings())
    gate = Gate(runtime, expected=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(registry.add_created, "alice", None, "dev", False, gate.make)
        await gate.all_waiting.wait()
        try:
            for persist in (True, False):
                with pytest.raises(AlreadyExistsError, match="already have a box named 'dev'"):
                    await registry.create("alice", None, BoxOptions(name="dev"), persist=persist)
            # Another owner's name is their own, in flight or not.
            await registry.create("bob", None, BoxOptions(name="dev"), persist=False)
        finally:
            gate.open.set()
    assert names(await registry.owned_by("alice")) == ["dev"]
    # A creation that failed frees its name again.
    await registry.remove("alice", "dev")

    async def broken_make(runtime_name: str) -> Box:
        raise InvalidStateError("the runtime refused")

    with pytest.raises(InvalidStateError):
        await registry.add_created("alice", None, "dev", False, broken_make)
    await registry.create("alice", None, BoxOptions(name="dev"), persist=True)


# -- lookups -----------------------------------------------------------------


async def test_not_found_lists_at_most_20_of_the_owners_boxes(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings(max_boxes_per_owner=30))
    first = await registry.create("alice", None, BoxOptions(name="b00"), persist=False)
    unnamed = await registry.create("alice", None, BoxOptions(), persist=False)
    for i in range(1, 20):
        await registry.create("alice", None, BoxOptions(name=f"b{i:02}"), persist=False)
    with pytest.raises(NotFoundError) as caught:
        await registry.resolve("alice", "nope")
    message = caught.value.message
    assert message.startswith(
        f"No box with that id or name ('nope') among your boxes. Your boxes: b00 ({first.id}), "
        f"{unnamed.id}, b01 ("
    )
    assert " b18 (" in message and " b19 (" not in message and message.endswith(").")


async def test_resolve_and_touch_id_restart_the_idle_clock_of_the_owner_only(
    runtime: FaultyRuntime,
) -> None:
    clock = Clock()
    registry = Registry(runtime, Settings(), clock=clock)
    entry = await registry.create("alice", None, BoxOptions(name="dev"), persist=False)
    created = entry.last_used
    clock.now += 1000
    await registry.touch_id("bob", entry.id)
    await registry.touch_id("alice", "no-such-box")
    assert await last_used(registry, entry.id) == created
    assert await registry.entry_by_id("bob", entry.id) is None
    assert (await registry.entry_by_id("alice", entry.id) or entry).last_used == created

    await registry.touch_id("alice", entry.id)
    assert await last_used(registry, entry.id) == clock.now

    clock.now += 1000
    resolved = await registry.resolve("alice", "dev")
    assert resolved.id == entry.id and resolved.last_used == clock.now
    assert await last_used(registry, entry.id) == clock.now


async def test_listing_forgets_boxes_gone_from_the_runtime(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings())
    gone = await registry.create("alice", None, BoxOptions(name="gone"), persist=False)
    kept = await registry.create("alice", None, BoxOptions(name="kept"), persist=False)
    bobs = await registry.create("bob", None, BoxOptions(name="gone"), persist=False)
    await runtime.remove(gone.id, force=True)
    await runtime.remove(bobs.id, force=True)
    listed = await registry.listed("alice")
    assert [(e.id, info.id) for e, info in listed] == [(kept.id, kept.id)]
    assert await registry.entry_by_id("alice", gone.id) is None
    # Another owner's listing does not forget bob's entry; his own does.
    assert await registry.entry_by_id("bob", bobs.id) is not None
    assert await registry.listed("bob") == []
    assert await registry.total() == 1


async def test_removing_a_running_box_stops_it_by_default(runtime: FaultyRuntime) -> None:
    registry = Registry(runtime, Settings())
    entry = await registry.create("alice", None, BoxOptions(name="dev"), persist=True)
    await entry.box.start()
    assert (await registry.remove("alice", "dev")).id == entry.id
    assert await runtime.list() == []


async def test_persist_and_force_are_keyword_only(runtime: FaultyRuntime) -> None:
    """``create(owner, session, options, True)`` would hide which flag was set."""
    registry = Registry(runtime, Settings())
    with pytest.raises(TypeError):
        await registry.create("alice", None, BoxOptions(), True)  # type: ignore[call-arg]
    assert await runtime.list() == []
    await registry.create("alice", None, BoxOptions(name="dev"), persist=False)
    with pytest.raises(TypeError):
        await registry.remove("alice", "dev", False)  # type: ignore[call-arg]
    assert await registry.total() == 1


async def test_removing_a_box_already_gone_from_the_runtime_forgets_it(
    runtime: FaultyRuntime,
) -> None:
    registry = Registry(runtime, Settings())
    entry = await registry.create("alice", None, BoxOptions(name="dev"), persist=False)
    await runtime.remove(entry.id, force=True)
    assert (await registry.remove("alice", "dev")).id == entry.id
    assert await registry.total() == 0


# -- the idle clock and cleanup ------------------------------------------------


async def test_expiry_counts_down_from_the_last_use(runtime: FaultyRuntime) -> None:
    clock = Clock()
    registry = Registry(runtime, Settings(box_idle_ttl_seconds=TTL), clock=clock)
    entry = await registry.create("alice", None, BoxOptions(), persist=False)
    kept = await registry.create("alice", None, BoxOptions(), persist=True)
    used = entry.last_used
    assert registry.expires_in(entry, now=used + 0.12345) == 1799.877
    assert registry.expires_in(entry, now=used + TTL + 5) == 0.0
    assert registry.expires_in(entry, now=used - 10) == TTL  # a clock behind is no idle time
    assert registry.expires_in(kept, now=used + TTL + 5) is None
    clock.now += 10
    assert registry.expires_in(entry) == TTL - 10
    async with entry.in_use():
        assert entry.attached == 1
        assert entry.idle_seconds(used + 10_000) == 0.0
        # Another request's view of the box sees it attached on this replica.
        assert (await registry.resolve("alice", entry.id)).attached == 1
    assert entry.attached == 0
    assert entry.idle_seconds(entry.last_used + 7) == 7


async def test_in_use_detaches_even_when_the_request_fails(runtime: FaultyRuntime) -> None:
    clock = Clock()
    registry = Registry(runtime, Settings(), clock=clock)
    entry = await registry.create("alice", None, BoxOptions(), persist=False)
    clock.now += 100
    with pytest.raises(RuntimeError):
        async with entry.in_use():
            assert await last_used(registry, entry.id) == clock.now
            clock.now += 100
            raise RuntimeError("the request failed")
    assert entry.attached == 0
    assert (await registry.resolve("alice", entry.id)).attached == 0
    assert await last_used(registry, entry.id) == clock.now  # touched again on the way out


async def test_reaping_removes_only_idle_unattended_ephemeral_boxes(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    registry = Registry(runtime, Settings(box_idle_ttl_seconds=TTL), clock=clock)
    # A persistent box first: skipping it must not end the scan.
    kept = await registry.create("alice", None, BoxOptions(name="kept"), persist=True)
    idle = await registry.create("alice", None, BoxOptions(name="idle"), persist=False)
    busy = await registry.create("alice", None, BoxOptions(name="busy"), persist=False)
    await idle.box.start()  # something still runs in it: reaping kills it
    async with busy.in_use():
        clock.now += TTL + 1
        fresh = await registry.create("bob", None, BoxOptions(name="fresh"), persist=False)
        with caplog.at_level(logging.INFO, logger="boxlite_mcp.sessions.registry"):
            assert await registry.reap_idle() == [idle.id]
    assert "reaped 1 idle boxes" in caplog.text
    assert {i.id for i in await runtime.list()} == {kept.id, busy.id, fresh.id}
    assert await registry.total() == 3
    assert await registry.reap_idle() == []


async def test_a_request_nobody_hears_attends_its_box_only_until_the_ttl(
    runtime: FaultyRuntime,
) -> None:
    """A request still running for a client that left (a legacy HTTP stream dropped)
    does not keep its box: the box idles from the last round its client was heard;
    a client that comes back (resumes) within the TTL keeps it."""
    clock = Clock()
    registry = Registry(runtime, Settings(box_idle_ttl_seconds=TTL), clock=clock)
    gone = await registry.create("alice", None, BoxOptions(name="gone"), persist=False)
    back = await registry.create("alice", None, BoxOptions(name="back"), persist=False)
    heard = {"gone": True, "back": True}
    async with gone.in_use(lambda: heard["gone"]), back.in_use(lambda: heard["back"]):
        clock.now += 10
        assert await registry.reap_round() == []
        assert await last_used(registry, gone.id) == clock.now  # heard: kept alive
        assert (await registry.resolve("alice", "gone")).attached == 1
        heard_at = clock.now
        heard.update(gone=False, back=False)  # both streams drop
        clock.now += 10
        assert await registry.reap_round() == []
        assert await last_used(registry, gone.id) == heard_at  # no longer touched
        seen = await registry.entry_by_id("alice", gone.id)  # as box_list shows it
        assert seen is not None and seen.attached == 0
        assert registry.expires_in(seen) == TTL - 10
        heard["back"] = True  # one client resumes within the TTL
        clock.now = heard_at + TTL
        assert await registry.reap_round() == [gone.id]
        assert {i.id for i in await runtime.list()} == {back.id}
        assert await last_used(registry, back.id) == clock.now


async def test_an_execution_that_ends_restarts_the_idle_clock(runtime: FaultyRuntime) -> None:
    """``mark_used`` (synchronous, from an execution's end) counts at the next reap."""
    clock = Clock()
    registry = Registry(runtime, Settings(box_idle_ttl_seconds=TTL), clock=clock)
    entry = await registry.create("alice", None, BoxOptions(), persist=False)
    clock.now += TTL + 1
    entry.mark_used()
    assert await registry.reap_idle() == []
    assert await registry.reap_round() == []
    assert await last_used(registry, entry.id) == clock.now  # stored by the round
    clock.now += TTL + 1
    assert await registry.reap_round() == [entry.id]


async def test_the_reaper_keeps_going_after_a_failure(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(runtime, Settings(box_idle_ttl_seconds=0.05, reap_interval_seconds=0.02))
    entry = await registry.create("alice", None, BoxOptions(), persist=False)
    runtime.fail_remove = RuntimeError("a runtime bug")
    runtime.removal_tried = anyio.Event()
    with (
        caplog.at_level(logging.INFO, logger="boxlite_mcp.sessions.registry"),
        anyio.fail_after(10),
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(registry.run_reaper)
            await runtime.removal_tried.wait()  # the first pass failed ...
            runtime.fail_remove = None
            runtime.removal_tried = anyio.Event()
            await runtime.removal_tried.wait()  # ... and a later one removed the box
            tg.cancel_scope.cancel()
    assert "reaping idle boxes failed" in caplog.text
    assert await registry.total() == 0
    assert entry.id not in {i.id for i in await runtime.list()}


async def test_a_removal_the_runtime_refuses_is_logged_not_raised(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(runtime, Settings())
    entry = await registry.create("alice", "s1", BoxOptions(), persist=False)
    runtime.fail_remove = InvalidStateError("box is busy")
    with caplog.at_level(logging.WARNING, logger="boxlite_mcp.sessions.registry"):
        await registry.end_session("s1")
    assert f"could not remove box {entry.id}: InvalidStateError" in caplog.text
    assert await registry.entry_by_id("alice", entry.id) is not None  # still known: retried later


async def test_ending_a_session_removes_its_ephemeral_boxes_only(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(runtime, Settings())
    doomed = await registry.create("alice", "s1", BoxOptions(), persist=False)
    kept = await registry.create("alice", "s1", BoxOptions(), persist=True)
    other = await registry.create("alice", "s2", BoxOptions(), persist=False)
    with caplog.at_level(logging.INFO, logger="boxlite_mcp.sessions.registry"):
        await registry.end_session("s1")
    assert "session ended: removed 1 boxes" in caplog.text
    assert {i.id for i in await runtime.list()} == {kept.id, other.id}
    assert await registry.entry_by_id("alice", doomed.id) is None
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="boxlite_mcp.sessions.registry"):
        await registry.end_session("s3")
    assert "session ended" not in caplog.text


async def test_shutdown_removes_ephemeral_boxes_and_keeps_persistent_ones(
    runtime: FaultyRuntime,
) -> None:
    registry = Registry(runtime, Settings())
    await registry.create("alice", "s1", BoxOptions(), persist=False)
    kept = await registry.create("bob", None, BoxOptions(), persist=True)
    await registry.shutdown()
    # The persistent box stays known (an SSE server runs its lifespan again per connection).
    assert [e.id for e in await registry.owned_by("bob")] == [kept.id]
    assert await registry.total() == 1
    assert [i.id for i in await runtime.list()] == [kept.id]


# -- several replicas over one store -------------------------------------------


async def test_two_replicas_reaping_at_once_remove_each_box_once_and_quietly(
    runtime: FaultyRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """Even without the lease (both reap in the same instant), ``remove_box`` decides
    who removes a box: each goes once, and the loser neither logs a warning nor raises."""
    clock = Clock()
    settings = Settings(box_idle_ttl_seconds=TTL)
    state = InProcessState()
    one = Registry(runtime, settings, state, clock=clock)
    two = Registry(runtime, settings, state, clock=clock)
    made = [(await one.create("alice", None, BoxOptions(), persist=False)).id for _ in range(4)]
    made.append((await two.create("bob", None, BoxOptions(), persist=False)).id)
    assert {e.id for e in await two.owned_by("alice")} == set(made[:4])  # shared records
    clock.now += TTL + 1
    results: list[list[str]] = []

    async def reap(registry: Registry) -> None:
        results.append(await registry.reap_idle())

    caplog.clear()  # the creations' INFO lines (another test may have lowered the level)
    with caplog.at_level(logging.WARNING, logger="boxlite_mcp.sessions.registry"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reap, one)
            tg.start_soon(reap, two)
    assert sorted(results[0] + results[1]) == sorted(made)  # every box, none twice
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await runtime.list() == []
    assert await one.total() == 0 and await two.total() == 0


async def test_only_the_lease_holder_reaps_and_another_takes_over_when_it_stops(
    runtime: FaultyRuntime,
) -> None:
    clock = Clock()
    settings = Settings(box_idle_ttl_seconds=TTL, reap_interval_seconds=3600)
    state = InProcessState()
    one = Registry(runtime, settings, state, clock=clock)
    two = Registry(runtime, settings, state, clock=clock)
    first = await one.create("alice", None, BoxOptions(), persist=False)
    clock.now += TTL + 1
    assert await one.reap_round() == [first.id]
    second = await two.create("alice", None, BoxOptions(), persist=False)
    clock.now += TTL + 1
    assert await two.reap_round() == []  # one holds the lease
    assert await state.lease_holder(REAPER_LEASE) == one.replica
    # A replica's reaper gives the lease up when it stops (here, between two rounds);
    # the next round elsewhere reaps.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one.run_reaper)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert await two.total() == 1
    assert await state.lease_holder(REAPER_LEASE) is None
    assert await two.reap_round() == [second.id]
    assert await state.lease_holder(REAPER_LEASE) == two.replica


async def test_a_box_made_by_another_replica_is_used_through_a_handle_of_its_own(
    runtime: FaultyRuntime,
) -> None:
    """A replica that did not create a box rebuilds its handle with ``runtime.get``."""
    state = InProcessState()
    one = Registry(runtime, Settings(), state)
    two = Registry(runtime, Settings(), state)
    made = await one.create("alice", None, BoxOptions(name="dev"), persist=False)
    assert two.cached_box(made.id) is None
    found = await two.resolve("alice", "dev")
    assert found.id == made.id and two.cached_box(made.id) is found.box
    await found.box.start()
    with pytest.raises(NotFoundError):
        await two.resolve("bob", made.id)
    assert (await two.remove("alice", "dev")).id == made.id
    with pytest.raises(NotFoundError):
        await one.resolve("alice", "dev")
    assert one.cached_box(made.id) is not None  # a stale handle is harmless: no record
    assert await runtime.list() == []
