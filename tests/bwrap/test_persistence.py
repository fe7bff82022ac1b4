"""What a box writes persists across execs, stop/start and runtime restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.errors import UnavailableError
from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, ExecRequest

from .conftest import exists, sh

pytestmark = pytest.mark.anyio


async def test_writes_persist_across_execs_and_stop_start(box: BwrapBox) -> None:
    assert (await sh(box, "echo kept > /root/f; echo gone > /tmp/t"))[0].exit_code == 0
    assert (await sh(box, "cat /root/f /tmp/t"))[1] == b"kept\ngone\n"
    await box.stop()
    await box.start()
    assert (await sh(box, "cat /root/f"))[1] == b"kept\n"
    # /tmp is a tmpfs for the box's life, as on BoxLite.
    assert (await sh(box, "test -e /tmp/t"))[0].exit_code == 1


async def test_background_processes_outlive_their_exec(box: BwrapBox) -> None:
    assert (await sh(box, "sleep 300 >/dev/null 2>&1 &"))[0].exit_code == 0
    _, out, _ = await sh(box, "ps -eo comm | grep -c '^sleep'")
    assert out == b"1\n"


def process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


async def test_restart_after_a_crash_cleans_up(tmp_path: Path) -> None:
    """A runtime that vanished without aclose: the next one finds its boxes stopped."""
    home = tmp_path / "home"
    first = BwrapRuntime(home=home)
    box = await first.create(BoxOptions(name="survivor"))
    execution = await box.exec(ExecRequest(command="sh", args=["-c", "echo ready; exec sleep 600"]))
    output = execution.output()
    assert (await output.__anext__()).data == b"ready\n"
    state = first._states[box.id]
    assert state.sandbox is not None
    init_pid = state.sandbox.init_pid
    cgroup_dirs = list(state.cgroup.dirs)

    first.store.release()  # a crashed process's home lock goes with it
    for box_id in list(first._disks):  # and so do its mounts of the boxes' disks
        first.close_disk(box_id)
    second = BwrapRuntime(home=home)  # the first is never closed: as after a crash
    try:
        infos = {i.name: i for i in await second.list()}
        assert infos["survivor"].status is BoxStatus.STOPPED
        assert process_state(init_pid) in (None, "Z")  # gone (or dead, not yet reaped)
        assert not any(exists(Path(d)) for d in cgroup_dirs)
        assert (await execution.wait()).exit_code < 0
        again = await second.get("survivor")
        assert (await sh(again, "echo back"))[1] == b"back\n"
    finally:
        await second.aclose()
        state.sandbox.close_block()


async def test_a_second_runtime_on_a_home_in_use_is_refused(tmp_path: Path) -> None:
    """Two servers on one home would kill and adopt each other's boxes: one per home."""
    home = tmp_path / "home"
    first = BwrapRuntime(home=home)
    try:
        with pytest.raises(UnavailableError, match="another boxlite-mcp runtime is using"):
            BwrapRuntime(home=home)
    finally:
        await first.aclose()
    again = BwrapRuntime(home=home)  # released by aclose
    await again.aclose()
