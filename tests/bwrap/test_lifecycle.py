"""Box lifecycle and exec basics on the bwrap runtime."""

from __future__ import annotations

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.errors import (
    AlreadyExistsError,
    InvalidStateError,
    NotFoundError,
)
from boxlite_mcp.runtime.types import BoxOptions, BoxStatus, ExecRequest

from .conftest import run, sh

pytestmark = pytest.mark.anyio


async def test_create_exec_stop_remove(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions(name="life"))
    assert (await box.info()).status is BoxStatus.CONFIGURED
    result, out, err = await sh(box, "echo out; echo err >&2; exit 3")
    assert (result.exit_code, out, err) == (3, b"out\n", b"err\n")
    info = await box.info()
    assert info.status is BoxStatus.RUNNING and info.pid
    await box.stop()
    assert (await box.info()).status is BoxStatus.STOPPED
    await runtime.remove("life")
    with pytest.raises(NotFoundError):
        await runtime.get("life")
    with pytest.raises(NotFoundError):
        await box.info()


async def test_names_unique_and_not_found_lists_boxes(runtime: BwrapRuntime) -> None:
    await runtime.create(BoxOptions(name="one"))
    with pytest.raises(AlreadyExistsError):
        await runtime.create(BoxOptions(name="one"))
    with pytest.raises(NotFoundError, match="one"):
        await runtime.get("nope")


async def test_remove_running_needs_force(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions())
    await box.start()
    with pytest.raises(InvalidStateError, match="force"):
        await runtime.remove(box.id)
    await runtime.remove(box.id, force=True)
    assert await runtime.list() == []


async def test_stop_ends_every_process(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions())
    execution = await box.exec(ExecRequest(command="sh", args=["-c", "sleep 300 & sleep 300"]))
    await box.stop(timeout_seconds=0)
    result = await execution.wait()
    assert result.exit_code < 0
    await box.start()
    _, out, _ = await run(box, "ps", "-eo", "comm")
    assert b"sleep" not in out


async def test_signal_death_is_negative(box: object) -> None:
    result, _, _ = await sh(box, "kill -TERM $$")
    assert result.exit_code == -15 and result.signal == 15


async def test_hostname_is_box_name(runtime: BwrapRuntime) -> None:
    box = await runtime.create(BoxOptions(name="hosty"))
    _, out, _ = await run(box, "hostname")
    assert out == b"hosty\n"
