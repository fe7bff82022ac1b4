"""Snapshots of a stopped box: create, list, get, restore, remove, and their errors.

A runtime without snapshots (``capabilities.snapshots_enabled`` false) must say so
with UnsupportedError for every snapshot operation.
"""

from __future__ import annotations

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    UnsupportedError,
)
from boxlite_mcp.runtime.types import Capabilities

from .support import WORK, BoxMaker, read_file, write_file

pytestmark = pytest.mark.anyio

FILE = f"{WORK}/snap.txt"


async def stopped_box_with(make_box: BoxMaker, content: str) -> Box:
    box = await make_box()
    await write_file(box, FILE, content)
    await box.stop()
    return box


async def test_snapshots_unsupported_say_so(make_box: BoxMaker, capabilities: Capabilities) -> None:
    if capabilities.snapshots_enabled:
        pytest.skip("snapshots are enabled: covered by the tests below")
    box = await stopped_box_with(make_box, "v1")
    with pytest.raises(UnsupportedError):
        await box.snapshot_create("s1")
    with pytest.raises(UnsupportedError):
        await box.snapshot_list()
    with pytest.raises(UnsupportedError):
        await box.snapshot_get("s1")
    with pytest.raises(UnsupportedError):
        await box.snapshot_restore("s1")
    with pytest.raises(UnsupportedError):
        await box.snapshot_remove("s1")


async def refused(capabilities: Capabilities, box: Box) -> bool:
    """When snapshots are off, assert the UnsupportedError and return True."""
    if capabilities.snapshots_enabled:
        return False
    with pytest.raises(UnsupportedError):
        await box.snapshot_create("s1")
    return True


async def test_snapshot_round_trip_restores_files(
    make_box: BoxMaker, capabilities: Capabilities
) -> None:
    box = await stopped_box_with(make_box, "version one")
    if await refused(capabilities, box):
        return
    info = await box.snapshot_create("s1")
    assert (info.name, info.box_id) == ("s1", box.id)
    assert info.id and info.created_at is not None

    listed = await box.snapshot_list()
    assert [s.name for s in listed] == ["s1"]
    got = await box.snapshot_get("s1")
    assert (got.id, got.name, got.box_id) == (info.id, "s1", box.id)

    await write_file(box, FILE, "version two")
    await write_file(box, f"{WORK}/later.txt", "added after the snapshot")
    await box.stop()
    await box.snapshot_restore("s1")
    assert await read_file(box, FILE) == "version one"
    assert await read_file(box, f"{WORK}/later.txt") is None

    await box.stop()
    await box.snapshot_create("s2")
    assert sorted(s.name for s in await box.snapshot_list()) == ["s1", "s2"]
    await box.snapshot_remove("s1")
    assert [s.name for s in await box.snapshot_list()] == ["s2"]
    with pytest.raises(NotFoundError):
        await box.snapshot_get("s1")
    # The remaining snapshot still restores.
    await box.snapshot_restore("s2")
    assert await read_file(box, FILE) == "version one"


async def test_snapshot_of_a_running_box_is_invalid_state(
    make_box: BoxMaker, capabilities: Capabilities
) -> None:
    box = await stopped_box_with(make_box, "v")
    if await refused(capabilities, box):
        return
    await box.snapshot_create("before")
    await box.start()
    with pytest.raises(InvalidStateError) as caught:
        await box.snapshot_create("while-running")
    assert caught.value.required_state == "stopped"  # the server's hint comes from this
    with pytest.raises(InvalidStateError) as caught:
        await box.snapshot_restore("before")
    assert caught.value.required_state == "stopped"
    await box.stop()
    assert [s.name for s in await box.snapshot_list()] == ["before"]


async def test_snapshot_name_errors(make_box: BoxMaker, capabilities: Capabilities) -> None:
    box = await stopped_box_with(make_box, "v")
    if await refused(capabilities, box):
        return
    await box.snapshot_create("dup")
    with pytest.raises(AlreadyExistsError):
        await box.snapshot_create("dup")
    for missing in (box.snapshot_get, box.snapshot_restore, box.snapshot_remove):
        with pytest.raises(NotFoundError):
            await missing("no-such-snapshot")
    with pytest.raises(InvalidArgumentError):
        await box.snapshot_create("")
    assert [s.name for s in await box.snapshot_list()] == ["dup"]


async def test_snapshots_belong_to_their_box(
    make_box: BoxMaker, capabilities: Capabilities
) -> None:
    first = await stopped_box_with(make_box, "first")
    if await refused(capabilities, first):
        return
    second = await stopped_box_with(make_box, "second")
    await first.snapshot_create("mine")
    assert await second.snapshot_list() == []
    with pytest.raises(NotFoundError):
        await second.snapshot_restore("mine")


@pytest.mark.parametrize("name", ["has space", "a/b", "-dash-first", "x" * 129, "", "s\0"])
async def test_every_runtime_refuses_the_same_bad_snapshot_names(
    make_box: BoxMaker, capabilities: Capabilities, name: str
) -> None:
    """One rule (runtime.types.check_name), where REST once let any path segment through."""
    box = await stopped_box_with(make_box, "v")
    if await refused(capabilities, box):
        return
    with pytest.raises(InvalidArgumentError):
        await box.snapshot_create(name)
    assert await box.snapshot_list() == []
