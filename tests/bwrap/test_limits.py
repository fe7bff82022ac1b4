"""Limits are enforced by cgroups and reported in BoxInfo.limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import run

pytestmark = pytest.mark.anyio


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[BwrapRuntime]:
    runtime = BwrapRuntime(home=tmp_path / "home", default_max_processes=40)
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def test_limits_are_reported_and_written(small: BwrapRuntime) -> None:
    box = await small.create(BoxOptions(cpus=1, memory_mib=256))
    await box.start()
    info = await box.info()
    assert info.limits is not None
    assert (info.limits.cpus, info.limits.memory_mib, info.limits.max_processes) == (1, 256, 40)
    assert info.limits.enforcement == "cgroup-v1"
    state = small._states[box.id]
    files = {Path(d).parts[4]: Path(d) for d in state.cgroup.dirs}
    assert (files["memory"] / "memory.limit_in_bytes").read_text().strip() == str(256 << 20)
    assert (files["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "100000"
    assert (files["pids"] / "pids.max").read_text().strip() == "40"


async def test_memory_hog_is_killed(small: BwrapRuntime) -> None:
    box = await small.create(BoxOptions(memory_mib=128))
    result, _, _ = await run(
        box, "python3", "-c", "x = bytearray(600 * 1024 * 1024); print(len(x))"
    )
    assert result.exit_code in (-9, 1)  # OOM-killed, or MemoryError
    if result.exit_code == -9:
        assert result.error_message and "memory" in result.error_message
    again, out, _ = await run(box, "echo", "alive")
    assert (again.exit_code, out) == (0, b"alive\n")


async def test_fork_bomb_is_contained(small: BwrapRuntime) -> None:
    box = await small.create(BoxOptions())
    script = (
        "import os, time\n"
        "n = 0\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    n += 1\n"
        "print(n)\n"
    )
    result, out, _ = await run(box, "python3", "-c", script, timeout_seconds=20)
    assert result.exit_code == 0
    assert 1 <= int(out) < 40
    await box.stop(timeout_seconds=0)  # the sleepers end with the box
    assert small._states[box.id].cgroup.pids() == set()
    again, out, _ = await run(box, "echo", "alive")
    assert (again.exit_code, out) == (0, b"alive\n")
