"""Stdin, signals, kill, timeouts and TTYs."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
from collections.abc import AsyncIterator

import anyio
import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import InvalidStateError, UnsupportedError
from boxlite_mcp.runtime.types import Capabilities, ExecRequest

from .support import (
    DEADLINE,
    WORK,
    BoxMaker,
    OutputReader,
    as_delivered,
    drain,
    read_file,
    run,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def box(module_box_maker: BoxMaker) -> AsyncIterator[Box]:
    yield await module_box_maker()


async def test_stdin_writes_then_close(box: Box, capabilities: Capabilities) -> None:
    execution = await box.exec(ExecRequest(command="cat"))
    reader = OutputReader(execution)
    await execution.write_stdin(b"hello ")
    await reader.until(b"hello ")  # cat echoed the first write before EOF
    await execution.write_stdin(b"world\n")
    await execution.write_stdin(bytes(range(256)))
    await execution.close_stdin()
    await execution.close_stdin()  # idempotent
    await reader.rest()
    with anyio.fail_after(DEADLINE):
        assert (await execution.wait()).exit_code == 0
    assert bytes(reader.stdout) == as_delivered(b"hello world\n" + bytes(range(256)), capabilities)


async def test_write_after_close_is_invalid_state(box: Box) -> None:
    execution = await box.exec(ExecRequest(command="cat"))
    await execution.close_stdin()
    with pytest.raises(InvalidStateError):
        await execution.write_stdin(b"late")
    with anyio.fail_after(DEADLINE):
        out, _ = await drain(execution)
        assert (await execution.wait()).exit_code == 0
    assert out == b""


async def test_large_binary_stdin(box: Box) -> None:
    data = os.urandom(3 * 1024 * 1024)
    before = await box.metrics()
    done = await run(box, "sha256sum", stdin=data)
    assert done.check().out.split()[0] == hashlib.sha256(data).hexdigest()
    after = await box.metrics()
    if before.bytes_sent_total is not None and after.bytes_sent_total is not None:
        assert after.bytes_sent_total - before.bytes_sent_total >= len(data)


async def test_stdin_and_output_stream_together(box: Box) -> None:
    """8 MiB through cat: stdin is written while output is read, neither side stalls."""
    data = base64.b64encode(os.urandom(6 * 1024 * 1024))
    done = await run(box, "cat", stdin=data)
    assert done.check().stdout == data


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
async def test_signal_right_after_start(box: Box, signum: int) -> None:
    """A signal sent before the process is surely running still reaches it."""
    execution = await box.exec(ExecRequest(command="sleep", args=["1000"]))
    await execution.signal(signum)
    with anyio.fail_after(DEADLINE):
        await drain(execution)
        result = await execution.wait()
    assert result.exit_code == -signum


async def test_sigterm_to_a_sleeping_process(box: Box) -> None:
    execution = await box.exec(
        ExecRequest(command="/bin/sh", args=["-c", "echo ready; exec sleep 1000"])
    )
    reader = OutputReader(execution)
    await reader.until(b"ready")
    await execution.signal(signal.SIGTERM)
    with anyio.fail_after(DEADLINE):
        result = await execution.wait()
    await reader.rest()
    assert result.exit_code == -signal.SIGTERM
    assert result.timed_out is False


async def test_signal_is_delivered_as_sent(box: Box) -> None:
    """A handled signal runs the handler (it is not turned into a kill)."""
    script = 'trap "echo got-usr1; exit 3" USR1; echo ready; while :; do sleep 0.05; done'
    execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", script]))
    reader = OutputReader(execution)
    await reader.until(b"ready")
    await execution.signal(signal.SIGUSR1)
    await reader.until(b"got-usr1")
    await reader.rest()
    with anyio.fail_after(DEADLINE):
        assert (await execution.wait()).exit_code == 3


async def test_kill_ends_the_process_and_its_children(box: Box) -> None:
    marker = f"{WORK}/kill-survivor"
    script = (
        f"mkdir -p {WORK}; rm -f {marker}; (sleep 1.5; echo survived > {marker}) & echo ready; wait"
    )
    execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", script]))
    reader = OutputReader(execution)
    await reader.until(b"ready")
    await execution.kill()
    with anyio.fail_after(DEADLINE):
        result = await execution.wait()
        await reader.rest()  # ends: no child holds the output open
    assert result.exit_code == -signal.SIGKILL
    await anyio.sleep(2.5)
    assert await read_file(box, marker) is None, "a child of the killed process lived on"


async def test_signal_and_kill_after_exit_are_harmless(box: Box) -> None:
    execution = await box.exec(ExecRequest(command="true"))
    with anyio.fail_after(DEADLINE):
        await drain(execution)
        assert (await execution.wait()).exit_code == 0
    await execution.signal(signal.SIGTERM)
    await execution.kill()
    await execution.close_stdin()
    assert (await execution.wait()).exit_code == 0


async def test_timeout_kills_a_command_that_never_ends(box: Box) -> None:
    with anyio.fail_after(DEADLINE / 2):
        execution = await box.exec(ExecRequest(command="sleep", args=["1000"], timeout_seconds=1))
        await drain(execution)
        result = await execution.wait()
    assert result.timed_out is True
    assert result.exit_code != 0


async def test_timeout_keeps_output_and_ends_children(box: Box) -> None:
    """Output before the timeout is delivered; children holding the output die too."""
    with anyio.fail_after(DEADLINE / 2):
        execution = await box.exec(
            ExecRequest(
                command="/bin/sh",
                args=["-c", "echo before; sleep 1000 & wait"],
                timeout_seconds=1,
            )
        )
        out, _ = await drain(execution)
        result = await execution.wait()
    assert result.timed_out is True
    assert out == b"before\n"


async def test_timeout_does_not_touch_a_quick_command(box: Box) -> None:
    done = await run(box, "/bin/sh", "-c", "echo quick", timeout_seconds=30)
    assert done.check().out == "quick\n"
    assert done.result.timed_out is False


async def test_no_tty_unless_asked(box: Box) -> None:
    done = await run(box, "/bin/sh", "-c", "[ -t 0 ] || [ -t 1 ] && echo tty || echo no-tty")
    assert done.check().out == "no-tty\n"


async def test_resize_without_tty_is_invalid_state(box: Box) -> None:
    execution = await box.exec(ExecRequest(command="cat"))
    with pytest.raises(InvalidStateError):
        await execution.resize(80, 24)
    await execution.close_stdin()
    with anyio.fail_after(DEADLINE):
        await drain(execution)
        await execution.wait()


async def test_tty_is_a_terminal_and_resizes(box: Box, capabilities: Capabilities) -> None:
    script = (
        '[ -t 0 ] && [ -t 1 ] && echo "is-a-tty"; echo ready; read line; echo "size=$(stty size)"'
    )
    request = ExecRequest(command="/bin/sh", args=["-c", script], tty=True)
    if not capabilities.tty_enabled:
        with pytest.raises(UnsupportedError):
            await box.exec(request)
        return
    execution = await box.exec(request)
    reader = OutputReader(execution)
    await reader.until(b"ready")
    await execution.resize(123, 45)
    await execution.write_stdin(b"go\n")
    await reader.until(b"size=")
    await reader.rest()
    with anyio.fail_after(DEADLINE):
        assert (await execution.wait()).exit_code == 0
    text = bytes(reader.stdout).decode(errors="replace")
    assert "is-a-tty" in text
    assert "size=45 123" in text
