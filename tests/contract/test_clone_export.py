"""Clone (one and many), export to a .boxlite archive and import it back.

A runtime without one of these (``clone_enabled``, ``export_enabled``,
``import_enabled`` false) must refuse it with UnsupportedError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    BoxliteError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    UnsupportedError,
)
from boxlite_mcp.runtime.types import BoxStatus, Capabilities

from .support import WORK, BoxMaker, entries, read_file, unique_name, write_file

pytestmark = pytest.mark.anyio

FILE = f"{WORK}/origin.txt"
NOT_RUNNING = (BoxStatus.STOPPED, BoxStatus.CONFIGURED)


async def stopped_source(make_box: BoxMaker, name: str | None = None) -> Box:
    box = await make_box(name=name)
    await write_file(box, FILE, "from the source")
    await box.stop()
    return box


async def test_clone_copies_the_disk_and_is_independent(
    make_box: BoxMaker, capabilities: Capabilities
) -> None:
    source = await stopped_source(make_box)
    name = unique_name("clone")
    if not capabilities.clone_enabled:
        with pytest.raises(UnsupportedError):
            await source.clone(name)
        return
    clone = await source.clone(name)
    make_box.track(clone)
    assert clone.id != source.id
    assert clone.name == name
    assert (await clone.info()).status in NOT_RUNNING

    assert await read_file(clone, FILE) == "from the source"
    await write_file(clone, FILE, "changed in the clone")
    assert await read_file(source, FILE) == "from the source"
    await write_file(source, f"{WORK}/only-source.txt", "x")
    assert await read_file(clone, f"{WORK}/only-source.txt") is None


async def test_clone_many(make_box: BoxMaker, runtime: Runtime, capabilities: Capabilities) -> None:
    source = await stopped_source(make_box)
    names = [unique_name(f"many{i}") for i in range(3)]
    if not capabilities.clone_enabled:
        with pytest.raises(UnsupportedError):
            await source.clone_many(3, names)
        return
    clones = await source.clone_many(3, names)
    make_box.track(*clones)
    assert [c.name for c in clones] == names
    assert len({c.id for c in clones} | {source.id}) == 4
    for clone in clones:
        assert await read_file(clone, FILE) == "from the source"

    unnamed = await source.clone_many(2)
    make_box.track(*unnamed)
    assert len({c.id for c in unnamed}) == 2
    listed = {info.id for info in await runtime.list()}
    assert {c.id for c in [*clones, *unnamed]} <= listed


async def test_clone_errors(
    make_box: BoxMaker, runtime: Runtime, capabilities: Capabilities
) -> None:
    taken = unique_name("taken")
    source = await stopped_source(make_box, name=taken)
    if not capabilities.clone_enabled:
        with pytest.raises(UnsupportedError):
            await source.clone()
        return
    with pytest.raises(AlreadyExistsError):
        await source.clone(taken)

    # All or nothing: one bad name means no clone at all.
    fresh = unique_name("fresh")
    before = {info.id for info in await runtime.list()}
    with pytest.raises(AlreadyExistsError):
        await source.clone_many(2, [fresh, taken])
    with pytest.raises(NotFoundError):
        await runtime.get(fresh)
    assert {info.id for info in await runtime.list()} == before

    with pytest.raises(InvalidArgumentError):
        await source.clone_many(2, [unique_name("only-one")])
    with pytest.raises(InvalidArgumentError):
        await source.clone_many(0)

    await source.start()
    with pytest.raises(InvalidStateError):
        await source.clone(unique_name("running"))


async def test_export_import_round_trip(
    make_box: BoxMaker, runtime: Runtime, capabilities: Capabilities, host_dir: Path
) -> None:
    name = unique_name("exp")
    source = await stopped_source(make_box, name=name)
    if not capabilities.export_enabled:
        with pytest.raises(UnsupportedError):
            await source.export(host_dir)
        return

    written = await source.export(host_dir)  # a directory: <dir>/<name>.boxlite
    assert written == host_dir / f"{name}.boxlite"
    assert written.is_file() and written.stat().st_size > 0
    as_file = await source.export(host_dir / "chosen.boxlite")
    assert as_file == host_dir / "chosen.boxlite" and as_file.is_file()

    imported_name = unique_name("imp")
    if not capabilities.import_enabled:
        with pytest.raises(UnsupportedError):
            await runtime.import_box(written, name=imported_name)
        return
    imported = await runtime.import_box(written, name=imported_name)
    make_box.track(imported)
    assert imported.id != source.id and imported.name == imported_name
    assert (await imported.info()).status in NOT_RUNNING
    assert await read_file(imported, FILE) == "from the source"
    await write_file(imported, FILE, "changed after import")
    assert await read_file(source, FILE) == "from the source"

    unnamed = await runtime.import_box(as_file)
    make_box.track(unnamed)
    assert unnamed.id not in (source.id, imported.id)
    assert await read_file(unnamed, FILE) == "from the source"


async def test_export_and_import_errors(
    make_box: BoxMaker, runtime: Runtime, capabilities: Capabilities, host_dir: Path
) -> None:
    source = await stopped_source(make_box)
    if capabilities.export_enabled:
        await source.start()
        with pytest.raises(InvalidStateError):
            await source.export(host_dir)
        assert entries(host_dir) == []
        await source.stop()
    if not capabilities.import_enabled:
        with pytest.raises(UnsupportedError):
            await runtime.import_box(host_dir / "missing.boxlite")
        return

    with pytest.raises(NotFoundError):
        await runtime.import_box(host_dir / "missing.boxlite")

    garbage = host_dir / "garbage.boxlite"
    garbage.write_bytes(b"this is not a box archive" * 100)
    before = {info.id for info in await runtime.list()}
    with pytest.raises(BoxliteError):
        await runtime.import_box(garbage, name=unique_name("garbage"))
    assert {info.id for info in await runtime.list()} == before

    if capabilities.export_enabled:
        archive = await source.export(host_dir)
        taken = unique_name("taken")
        await make_box(name=taken)
        with pytest.raises(AlreadyExistsError):
            await runtime.import_box(archive, name=taken)
