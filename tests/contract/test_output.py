"""Output: streamed as produced, per-stream order, byte-exact, large, read late or never."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import anyio
import pytest

from boxlite_mcp.runtime.base import UNREAD_OUTPUT_LIMIT, Box
from boxlite_mcp.runtime.types import Capabilities, ExecRequest

from .support import DEADLINE, BoxMaker, OutputReader, PeakMemory, as_delivered, drain, run

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BLOCK = bytes(range(256)) * 4096  # 1 MiB holding every byte value


def pattern_program(mib: int, stream: str = "stdout") -> str:
    """Python source writing ``mib`` copies of BLOCK to a stream."""
    return (
        "import sys\n"
        "b = bytes(range(256)) * 4096\n"
        f"w = sys.{stream}.buffer\n"
        f"for _ in range({mib}):\n"
        "    w.write(b)\n"
        "w.flush()\n"
    )


def pattern_digest(mib: int, block: bytes = BLOCK) -> str:
    digest = hashlib.sha256()
    for _ in range(mib):
        digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
async def box(module_box_maker: BoxMaker) -> AsyncIterator[Box]:
    yield await module_box_maker()


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_output_arrives_while_the_process_runs(box: Box, stream: str) -> None:
    redirect = ">&2" if stream == "stderr" else ""
    script = f"printf first {redirect}; cat >/dev/null; printf done {redirect}"
    execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", script]))
    reader = OutputReader(execution)
    # The process is blocked reading stdin: "first" can only come by streaming.
    await reader.until(b"first", stream)
    await execution.close_stdin()
    await reader.rest()
    with anyio.fail_after(DEADLINE):
        result = await execution.wait()
    assert result.exit_code == 0
    got = reader.stdout if stream == "stdout" else reader.stderr
    other = reader.stderr if stream == "stdout" else reader.stdout
    assert (bytes(got), bytes(other)) == (b"firstdone", b"")


async def test_lines_arrive_one_by_one(box: Box) -> None:
    """Each line is read before the next is written: nothing waits for exit or a full buffer."""
    execution = await box.exec(
        ExecRequest(
            command="/bin/sh",
            args=["-c", "for i in 1 2 3 4 5; do echo line$i; read ack; done"],
        )
    )
    reader = OutputReader(execution)
    for i in range(1, 6):
        await reader.until(f"line{i}\n".encode())
        await execution.write_stdin(b"ack\n")
    await execution.close_stdin()
    await reader.rest()
    with anyio.fail_after(DEADLINE):
        assert (await execution.wait()).exit_code == 0
    assert bytes(reader.stdout) == b"".join(f"line{i}\n".encode() for i in range(1, 6))


async def test_binary_output_is_byte_exact_on_both_streams(
    box: Box, capabilities: Capabilities
) -> None:
    program = (
        "import sys\n"
        "data = bytes(range(256)) * 3 + bytes(range(255, -1, -1))\n"
        "sys.stdout.buffer.write(data); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(data[::-1]); sys.stderr.flush()\n"
    )
    done = await run(box, "python3", "-c", program)
    data = bytes(range(256)) * 3 + bytes(range(255, -1, -1))
    assert done.check().stdout == as_delivered(data, capabilities)
    assert done.stderr == as_delivered(data[::-1], capabilities)


async def test_each_stream_keeps_its_order(box: Box) -> None:
    program = (
        "import sys\n"
        "for i in range(3000):\n"
        "    sys.stdout.write(f'o{i}\\n'); sys.stdout.flush()\n"
        "    sys.stderr.write(f'e{i}\\n'); sys.stderr.flush()\n"
    )
    done = await run(box, "python3", "-c", program)
    assert done.check().out == "".join(f"o{i}\n" for i in range(3000))
    assert done.err == "".join(f"e{i}\n" for i in range(3000))


async def test_large_output_streams_in_bounded_memory(box: Box, capabilities: Capabilities) -> None:
    """64 MiB through output(), read slowly at first: the producer waits, memory stays flat.

    A bounded pipeline's working set does not depend on the output's size (measured:
    5-20 MiB for the REST runtimes at 48 and 128 MiB alike); buffering it all shows
    as 64 MiB or more.
    """
    mib = 64
    block = as_delivered(BLOCK, capabilities)
    digest = hashlib.sha256()
    total = 0
    stderr = bytearray()
    with PeakMemory() as memory, anyio.fail_after(DEADLINE * 2):
        execution = await box.exec(
            ExecRequest(command="python3", args=["-c", pattern_program(mib)])
        )
        async for chunk in execution.output():
            if total == 0:
                # A slow consumer: unbounded buffering would show here.
                await anyio.sleep(1.0)
            if chunk.stream == "stdout":
                digest.update(chunk.data)
                total += len(chunk.data)
            else:
                stderr.extend(chunk.data)
        result = await execution.wait()
    assert result.exit_code == 0, bytes(stderr)
    assert total == mib * len(block)
    assert digest.hexdigest() == pattern_digest(mib, block)
    if not capabilities.output_backpressure:
        return  # declared: output is buffered without bound below this runtime
    if memory.grew is None:
        pytest.skip("no resident high-water mark to measure on this host")
    assert memory.grew < mib * MIB // 2, f"resident memory grew {memory.grew / MIB:.1f} MiB"


async def test_unread_output_never_blocks_wait_and_keeps_its_head(
    box: Box, capabilities: Capabilities
) -> None:
    """Nobody reads: the process still ends; a late output() gets at most the earliest 8 MiB.

    Memory: the kept 8 MiB plus a working set independent of the output's size.
    """
    mib = 64
    with PeakMemory() as memory, anyio.fail_after(DEADLINE * 2):
        execution = await box.exec(
            ExecRequest(command="python3", args=["-c", pattern_program(mib)])
        )
        await execution.close_stdin()
        result = await execution.wait()
    assert result.exit_code == 0
    if capabilities.output_backpressure:
        assert memory.grew is None or memory.grew < 40 * MIB, (
            f"resident memory grew {(memory.grew or 0) / MIB:.1f} MiB with nobody reading"
        )

    with anyio.fail_after(DEADLINE):
        late, late_err = await drain(execution)
    assert late_err == b""
    assert 0 < len(late) <= UNREAD_OUTPUT_LIMIT
    block = as_delivered(BLOCK, capabilities)
    expected_head = (block * (len(late) // len(block) + 1))[: len(late)]
    assert late == expected_head, "late output is the earliest output, in order"


async def test_output_read_after_wait_is_complete(box: Box) -> None:
    execution = await box.exec(
        ExecRequest(
            command="/bin/sh",
            args=["-c", "echo out1; echo err1 >&2; echo out2; exit 4"],
        )
    )
    with anyio.fail_after(DEADLINE):
        result = await execution.wait()
        out, err = await drain(execution)
    assert result.exit_code == 4
    assert (out, err) == (b"out1\nout2\n", b"err1\n")


async def test_closed_output_is_not_an_exit(box: Box) -> None:
    """A process that closes stdout and stderr keeps running until it exits."""
    done = await run(box, "/bin/sh", "-c", "echo bye; exec >&- 2>&-; sleep 0.5; exit 3")
    assert (done.stdout, done.exit_code) == (b"bye\n", 3)


async def test_big_stderr_with_little_stdout(box: Box, capabilities: Capabilities) -> None:
    """A full stderr pipe must not stall a process whose stdout is quiet."""
    done = await run(box, "python3", "-c", pattern_program(4, "stderr"))
    assert done.check().stdout == b""
    assert done.stderr == as_delivered(BLOCK, capabilities) * 4
