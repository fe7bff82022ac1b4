"""A restart of the runtime: a new one on the same home finds everything as it was left.

Boxes, names, options and files survive; a box that was running comes back
stopped (its processes are gone) and runs again on the next exec. How the second
runtime is opened is the factory's business (see conftest: ``reopen``).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, ExecRequest
from tests.harness import RuntimeFactory

from .support import DEADLINE, WORK, OutputReader, read_file, unique_name, write_file

pytestmark = pytest.mark.anyio


async def test_restart_keeps_boxes_and_files(
    runtime_factory: RuntimeFactory, reopen_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    running_name, stopped_name, configured_name = (
        unique_name("r-run"),
        unique_name("r-stop"),
        unique_name("r-conf"),
    )
    async with runtime_factory(home) as first:
        running = await first.create(
            BoxOptions(name=running_name, cpus=1, memory_mib=256, env={"KEPT": "yes"})
        )
        await write_file(running, f"{WORK}/kept.txt", "survives")
        execution = await running.exec(
            ExecRequest(command="/bin/sh", args=["-c", "echo ready; exec sleep 8642"])
        )
        await OutputReader(execution).until(b"ready")

        stopped = await first.create(BoxOptions(name=stopped_name))
        await write_file(stopped, f"{WORK}/kept.txt", "stopped too")
        await stopped.stop()

        configured = await first.create(BoxOptions(name=configured_name))
        ids = {running.id, stopped.id, configured.id}
        assert (await running.info()).running

    async with reopen_runtime(home) as second:
        listed = {info.id: info for info in await second.list()}
        assert ids <= set(listed)
        assert listed[running.id].name == running_name
        assert listed[running.id].status is BoxStatus.STOPPED
        assert (listed[running.id].cpus, listed[running.id].memory_mib) == (1, 256)
        assert listed[stopped.id].status is BoxStatus.STOPPED
        assert listed[configured.id].status in (BoxStatus.CONFIGURED, BoxStatus.STOPPED)

        again = await second.get(running_name)
        assert again.id == running.id
        assert await read_file(again, f"{WORK}/kept.txt") == "survives"
        with anyio.fail_after(DEADLINE):
            done = await again.exec(ExecRequest(command="/bin/sh", args=["-c", "echo $KEPT"]))
            reader = OutputReader(done)
            await reader.rest()
            assert (await done.wait()).exit_code == 0
        assert bytes(reader.stdout) == b"yes\n"
        # The sleeper from before the restart is gone.
        procs = await again.exec(
            ExecRequest(command="/bin/sh", args=["-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
        )
        reader = OutputReader(procs)
        await reader.rest()
        assert b"sleep 8642" not in bytes(reader.stdout)

        assert await read_file(await second.get(stopped_name), f"{WORK}/kept.txt") == (
            "stopped too"
        )
        await second.remove(configured_name)
        await second.remove(running_name, force=True)

    async with reopen_runtime(home) as third:
        names = {info.name for info in await third.list()}
        assert stopped_name in names
        assert running_name not in names and configured_name not in names
        await third.remove(stopped_name, force=True)
