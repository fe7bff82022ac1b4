"""Box lifecycle: create (options round-trip), get, list, start/stop, remove."""

from __future__ import annotations

import anyio
import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.errors import InvalidStateError, NotFoundError
from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, ExecRequest, RuntimeInfo

from .support import DEADLINE, WORK, BoxMaker, OutputReader, read_file, sh, unique_name, write_file

pytestmark = pytest.mark.anyio


async def test_create_with_defaults_is_configured(make_box: BoxMaker) -> None:
    box = await make_box(BoxOptions())
    info = await box.info()
    assert info.id == box.id and box.id
    assert info.status is BoxStatus.CONFIGURED
    assert info.image, "info.image names the default image"
    assert info.created_at is not None


async def test_create_options_round_trip_into_info(make_box: BoxMaker) -> None:
    name = unique_name("opts")
    box = await make_box(BoxOptions(name=name, cpus=1, memory_mib=256))
    assert box.name == name
    info = await box.info()
    assert (info.name, info.cpus, info.memory_mib) == (name, 1, 256)
    await box.start()
    info = await box.info()
    assert (info.name, info.cpus, info.memory_mib) == (name, 1, 256)
    (await sh(box, "true")).check()


@pytest.mark.parametrize("name", ["a", "dots.and_underscores-1", "N" * 128])
async def test_any_valid_name_works(make_box: BoxMaker, runtime: Runtime, name: str) -> None:
    """Every name the model accepts makes a working box (e.g. longer than a hostname)."""
    name = name if len(name) == 128 else f"{name}-{unique_name('n')}"
    box = await make_box(name=name)
    assert (await runtime.get(name)).id == box.id
    (await sh(box, "echo ok")).check()


async def test_box_env_and_working_dir_apply_to_execs(make_box: BoxMaker) -> None:
    box = await make_box(
        BoxOptions(env={"BOX_A": "from box", "BOX_B": "b=1 ü"}, working_dir="/usr")
    )
    done = await sh(box, 'printf "%s|%s|%s" "$BOX_A" "$BOX_B" "$(pwd)"')
    assert done.check().out == "from box|b=1 ü|/usr"

    # An exec's own env and working dir win; the box's other variables stay.
    done = await sh(
        box,
        'printf "%s|%s|%s" "$BOX_A" "$BOX_B" "$(pwd)"',
        env={"BOX_A": "from exec"},
        working_dir="/etc",
    )
    assert done.check().out == "from exec|b=1 ü|/etc"


async def test_box_user_applies_to_execs(make_box: BoxMaker) -> None:
    box = await make_box(BoxOptions(user="65534:65534"))
    done = await sh(box, 'printf "%s:%s" "$(id -u)" "$(id -g)"')
    assert done.check().out == "65534:65534"


async def test_get_by_id_and_by_name(runtime: Runtime, make_box: BoxMaker) -> None:
    name = unique_name("get")
    box = await make_box(name=name)
    by_id = await runtime.get(box.id)
    by_name = await runtime.get(name)
    assert by_id.id == by_name.id == box.id
    assert by_id.name == by_name.name == name
    assert (await by_name.info()).name == name


async def test_get_unknown_raises_not_found_naming_what_exists(
    runtime: Runtime, make_box: BoxMaker
) -> None:
    existing = unique_name("exists")
    await make_box(name=existing)
    missing = unique_name("missing")
    with pytest.raises(NotFoundError) as caught:
        await runtime.get(missing)
    assert missing in str(caught.value)
    assert existing in str(caught.value), "the error names the boxes that do exist"


async def test_runtime_info_says_what_it_is(runtime_info: RuntimeInfo, runtime_id: str) -> None:
    """The harness id starts with the runtime's name; a REST id ends with its API generation."""
    kind = runtime_id.split("-")[0]
    assert runtime_info.name == kind
    assert runtime_info.isolation.strip()
    if kind == "rest":
        assert runtime_info.api_generation == runtime_id.split("-", 1)[1]
        assert runtime_info.endpoint and "@" not in runtime_info.endpoint


async def test_list_shows_boxes_with_their_state(runtime: Runtime, make_box: BoxMaker) -> None:
    name = unique_name("list")
    configured = await make_box(name=name)
    running = await make_box()
    await running.start()

    listed = {info.id: info for info in await runtime.list()}
    assert listed[configured.id].name == name
    assert listed[configured.id].status is BoxStatus.CONFIGURED
    assert listed[running.id].status is BoxStatus.RUNNING


async def test_start_stop_transitions_and_idempotence(make_box: BoxMaker) -> None:
    box = await make_box()
    assert (await box.info()).status is BoxStatus.CONFIGURED
    await box.start()
    assert (await box.info()).status is BoxStatus.RUNNING
    await box.start()  # idempotent on a running box
    assert (await box.info()).status is BoxStatus.RUNNING
    await box.stop()
    assert (await box.info()).status is BoxStatus.STOPPED
    await box.stop()  # idempotent on a stopped box
    assert (await box.info()).status is BoxStatus.STOPPED
    await box.start()  # stopped -> running
    assert (await box.info()).status is BoxStatus.RUNNING
    await box.stop(timeout_seconds=5)
    assert (await box.info()).status is BoxStatus.STOPPED


async def test_exec_starts_configured_and_stopped_boxes(make_box: BoxMaker) -> None:
    box = await make_box()
    (await sh(box, "true")).check()
    assert (await box.info()).running
    await box.stop()
    (await sh(box, "true")).check()
    assert (await box.info()).running


async def test_files_persist_across_stop_and_start(make_box: BoxMaker) -> None:
    box = await make_box()
    await write_file(box, f"{WORK}/persist.txt", "kept")
    await box.stop()
    await box.start()
    assert await read_file(box, f"{WORK}/persist.txt") == "kept"


async def test_stop_ends_every_process(make_box: BoxMaker) -> None:
    box = await make_box()
    execution = await box.exec(
        ExecRequest(command="/bin/sh", args=["-c", "sleep 7001 & echo ready; exec sleep 7002"])
    )
    reader = OutputReader(execution)
    await reader.until(b"ready")
    with anyio.fail_after(DEADLINE):
        await box.stop(timeout_seconds=2)
        result = await execution.wait()
        await reader.rest()
    assert result.exit_code != 0
    assert (await box.info()).status is BoxStatus.STOPPED
    # Nothing survived the stop: a fresh start has no sleeper from before.
    done = await sh(box, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert "sleep 700" not in done.out


async def test_remove_running_box_needs_force(runtime: Runtime, make_box: BoxMaker) -> None:
    box = await make_box()
    await box.start()
    with pytest.raises(InvalidStateError):
        await runtime.remove(box.id)
    assert (await box.info()).status is BoxStatus.RUNNING  # refused means untouched

    await runtime.remove(box.id, force=True)
    with pytest.raises(NotFoundError):
        await runtime.get(box.id)
    assert box.id not in {info.id for info in await runtime.list()}


async def test_remove_stopped_and_configured_boxes_by_name(
    runtime: Runtime, make_box: BoxMaker
) -> None:
    stopped_name, configured_name = unique_name("rm-s"), unique_name("rm-c")
    stopped = await make_box(name=stopped_name)
    await stopped.start()
    await stopped.stop()
    await make_box(name=configured_name)

    await runtime.remove(stopped_name)
    await runtime.remove(configured_name)
    names = {info.name for info in await runtime.list()}
    assert stopped_name not in names and configured_name not in names
    with pytest.raises(NotFoundError):
        await runtime.get(stopped_name)


async def test_removed_name_can_be_reused(runtime: Runtime, make_box: BoxMaker) -> None:
    name = unique_name("reuse")
    first = await make_box(name=name)
    await write_file(first, f"{WORK}/old.txt", "old")
    await runtime.remove(name, force=True)

    second = await make_box(name=name)
    assert second.id != first.id
    assert await read_file(second, f"{WORK}/old.txt") is None  # a new box, a new disk


async def test_remove_kills_running_processes(runtime: Runtime, make_box: BoxMaker) -> None:
    box = await make_box()
    execution = await box.exec(
        ExecRequest(command="/bin/sh", args=["-c", "echo ready; exec sleep 1000"])
    )
    reader = OutputReader(execution)
    await reader.until(b"ready")
    await runtime.remove(box.id, force=True)
    with anyio.fail_after(DEADLINE):
        result = await execution.wait()
        await reader.rest()  # the output ends too
    assert result.exit_code != 0
