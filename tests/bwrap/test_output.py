"""How bwrap executions stream output: backpressure, unread output, pipes held open, TTYs."""

from __future__ import annotations

import hashlib

import anyio
import pytest

from boxlite_mcp.runtime.base import UNREAD_OUTPUT_LIMIT
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.bwrap.execution import HIGH_WATER, READ_BYTES, BwrapExecution
from boxlite_mcp.runtime.types import ExecRequest

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


def writer(mib: int) -> ExecRequest:
    return ExecRequest(
        command="python3",
        args=[
            "-c",
            "import sys\nb = bytes(range(256)) * 4096\n"
            f"for _ in range({mib}): sys.stdout.buffer.write(b)\nsys.stdout.flush()\n",
        ],
    )


async def test_slow_reader_bounds_the_queue_and_gets_everything(box: BwrapBox) -> None:
    execution = await box.exec(writer(50))
    assert isinstance(execution, BwrapExecution)
    digest = hashlib.sha256()
    total = 0
    peak = 0
    async for chunk in execution.output():
        digest.update(chunk.data)
        total += len(chunk.data)
        peak = max(peak, execution.out.queued)
        if total < 4 * MIB:
            await anyio.sleep(0.002)  # a slow consumer at first: the producer must wait
    assert total == 50 * MIB
    expected = hashlib.sha256(bytes(range(256)) * 4096 * 50).hexdigest()
    assert digest.hexdigest() == expected
    assert peak <= HIGH_WATER + 2 * READ_BYTES
    assert (await execution.wait()).exit_code == 0


async def test_unread_output_keeps_the_earliest_bytes_and_the_process_ends(
    box: BwrapBox,
) -> None:
    execution = await box.exec(writer(20))
    with anyio.fail_after(60):
        result = await execution.wait()  # nobody reads: it must still finish
    assert result.exit_code == 0
    data = bytearray()
    async for chunk in execution.output():
        data.extend(chunk.data)
    assert 0 < len(data) <= UNREAD_OUTPUT_LIMIT
    assert bytes(data) == (bytes(range(256)) * 4096 * 20)[: len(data)]  # the earliest bytes


async def test_background_job_holding_the_pipes_does_not_delay_the_end(box: BwrapBox) -> None:
    execution = await box.exec(ExecRequest(command="sh", args=["-c", "sleep 30 & echo started"]))
    with anyio.fail_after(10):
        out = b"".join([c.data async for c in execution.output()])
        result = await execution.wait()
    assert (result.exit_code, out) == (0, b"started\n")


async def test_abandoned_output_does_not_block_the_process(box: BwrapBox) -> None:
    execution = await box.exec(writer(30))
    output = execution.output()
    await output.__anext__()
    await output.aclose()  # the consumer walks away
    with anyio.fail_after(60):
        assert (await execution.wait()).exit_code == 0


async def test_tty_resize_and_one_stream(box: BwrapBox) -> None:
    execution = await box.exec(
        ExecRequest(
            command="sh", args=["-c", "stty size; read line; stty size; echo err >&2"], tty=True
        )
    )
    chunks: list[tuple[str, bytes]] = []
    first_size = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def read() -> None:
            async for chunk in execution.output():
                chunks.append((chunk.stream, chunk.data))
                if b"24 80" in b"".join(d for _, d in chunks):
                    first_size.set()

        tg.start_soon(read)
        with anyio.fail_after(10):
            await first_size.wait()
        await execution.resize(120, 40)
        await execution.write_stdin(b"go\n")
    text = b"".join(d for _, d in chunks)
    assert b"40 120" in text and b"err" in text
    assert {stream for stream, _ in chunks} == {"stdout"}
    assert (await execution.wait()).exit_code == 0


async def test_resize_without_tty_is_invalid_state(box: BwrapBox) -> None:
    from boxlite_mcp.runtime.errors import InvalidStateError

    execution = await box.exec(ExecRequest(command="true"))
    with pytest.raises(InvalidStateError):
        await execution.resize(80, 24)
    await execution.wait()


async def test_bad_signal_numbers_are_invalid_arguments(box: BwrapBox) -> None:
    from boxlite_mcp.runtime.errors import InvalidArgumentError

    execution = await box.exec(ExecRequest(command="sleep", args=["60"]))
    for bad in (0, -1, 10_000):
        with pytest.raises(InvalidArgumentError):
            await execution.signal(bad)
    await execution.signal(15)
    assert (await execution.wait()).exit_code == -15
