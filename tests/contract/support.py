"""Helpers the contract tests share: box bookkeeping, running commands, reading output."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from boxlite_mcp.runtime.base import Box, Execution, Runtime
from boxlite_mcp.runtime.errors import BoxliteError
from boxlite_mcp.runtime.types import BoxOptions, Capabilities, ExecRequest, ExecResult

#: Upper bound for anything that should finish promptly; a hang fails, it never blocks.
DEADLINE = 60.0

#: A directory every test box has on a persistent (non-tmpfs) part of its root.
WORK = "/root/contract"


def unique_name(prefix: str) -> str:
    """A box or snapshot name no other test (or earlier run on the same home) uses."""
    return f"ct-{prefix}-{uuid.uuid4().hex[:10]}"


def reopener(
    factory: Callable[[Path], AbstractAsyncContextManager[Runtime]],
) -> Callable[[Path], AbstractAsyncContextManager[Runtime]]:
    """The factory's ``reopen`` if it has one, else the factory itself."""
    reopen = getattr(factory, "reopen", None)
    return reopen if callable(reopen) else factory


class BoxMaker:
    """Creates boxes for a test and force-removes every one of them afterwards."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ids: list[str] = []

    async def __call__(self, options: BoxOptions | None = None, **fields: Any) -> Box:
        box = await self.runtime.create(options if options is not None else BoxOptions(**fields))
        self.ids.append(box.id)
        return box

    def track(self, *boxes: Box) -> None:
        """Remove these too (clones, imports) when the test ends."""
        self.ids.extend(b.id for b in boxes)

    async def cleanup(self) -> None:
        for box_id in reversed(self.ids):
            try:
                with anyio.fail_after(DEADLINE):
                    await self.runtime.remove(box_id, force=True)
            except BoxliteError:
                pass  # removed by the test itself
        self.ids.clear()


@dataclass
class Completed:
    """A finished execution: its whole output and its result."""

    stdout: bytes
    stderr: bytes
    result: ExecResult

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def out(self) -> str:
        return self.stdout.decode()

    @property
    def err(self) -> str:
        return self.stderr.decode()

    def check(self) -> Completed:
        """Assert success, showing the output when it was not."""
        assert self.exit_code == 0, f"exit {self.exit_code}: stderr={self.stderr[-2000:]!r}"
        return self


async def drain(execution: Execution) -> tuple[bytes, bytes]:
    """Read the whole output, split by stream."""
    out = bytearray()
    err = bytearray()
    async for chunk in execution.output():
        (out if chunk.stream == "stdout" else err).extend(chunk.data)
    return bytes(out), bytes(err)


async def finish(execution: Execution, stdin: bytes | None = None) -> Completed:
    """Feed ``stdin`` (then EOF) while reading all output; then wait."""
    result: dict[str, tuple[bytes, bytes]] = {}

    async def read() -> None:
        result["output"] = await drain(execution)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        if stdin:
            await execution.write_stdin(stdin)
        await execution.close_stdin()
    out, err = result["output"]
    return Completed(out, err, await execution.wait())


async def run(
    box: Box,
    command: str,
    *args: str,
    stdin: bytes | None = None,
    deadline: float = DEADLINE,
    **fields: Any,
) -> Completed:
    """Run ``command args...`` (exact argv) to completion."""
    with anyio.fail_after(deadline):
        execution = await box.exec(ExecRequest(command=command, args=list(args), **fields))
        return await finish(execution, stdin)


async def sh(box: Box, script: str, **kwargs: Any) -> Completed:
    """Run a /bin/sh script to completion."""
    return await run(box, "/bin/sh", "-c", script, **kwargs)


class OutputReader:
    """Reads one execution's output incrementally (``output()`` may be called once)."""

    def __init__(self, execution: Execution) -> None:
        self._iter = execution.output().__aiter__()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.ended = False

    async def next_chunk(self) -> bool:
        """Read one chunk; False when the output has ended."""
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return False
        (self.stdout if chunk.stream == "stdout" else self.stderr).extend(chunk.data)
        return True

    async def until(self, marker: bytes, stream: str = "stdout") -> bytes:
        buf = self.stdout if stream == "stdout" else self.stderr
        with anyio.fail_after(DEADLINE):
            while marker not in buf:
                if not await self.next_chunk():
                    raise AssertionError(
                        f"output ended before {marker!r}: stdout={bytes(self.stdout)[-500:]!r} "
                        f"stderr={bytes(self.stderr)[-500:]!r}"
                    )
        return bytes(buf)

    async def rest(self) -> None:
        with anyio.fail_after(DEADLINE):
            while await self.next_chunk():
                pass


async def write_file(box: Box, path: str, content: str) -> None:
    """Write a text file in the box through an exec (independent of copy_in)."""
    done = await run(
        box,
        "/bin/sh",
        "-c",
        'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"',
        "sh",
        path,
        content,
    )
    done.check()


async def read_file(box: Box, path: str) -> str | None:
    """A box file's text, or None when it does not exist."""
    done = await run(
        box, "/bin/sh", "-c", 'if [ -e "$1" ]; then cat "$1"; else exit 3; fi', "sh", path
    )
    if done.exit_code == 3:
        return None
    return done.check().out


def entries(path: Path) -> list[Path]:
    """What a host directory holds (a tiny, local, blocking read)."""
    return sorted(path.iterdir())


class PeakMemory:
    """How far this process's resident high-water mark rose over a block, in bytes.

    The resident set counts everything in the process: Python objects, an
    in-process server's buffers, an SDK's native buffers. (tracemalloc is not
    used: stopping it while an SDK's native threads allocate crashes CPython 3.11.)
    ``grew`` is None where Linux's high-water-mark reset is unavailable.
    """

    def __init__(self) -> None:
        self.grew: int | None = None
        self._before: int | None = None

    def __enter__(self) -> PeakMemory:
        self._before = _reset_high_water_mark()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._before is not None:
            self.grew = max(0, _status_kib("VmHWM") * 1024 - self._before)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_high_water_mark() -> int | None:
    """Reset the resident high-water mark; the resident size now, or None if impossible.

    Freed memory is handed back first (a collection, then glibc's ``malloc_trim``),
    so a buffer that reuses memory freed by an earlier test still shows as growth.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except (OSError, LookupError):
        return None


def as_delivered(data: bytes, capabilities: Capabilities) -> bytes:
    """The output bytes a runtime delivers for ``data`` written by a process.

    Exactly ``data``, unless the runtime declares ``binary_output`` false: then
    output is decoded as UTF-8 with invalid bytes as U+FFFD (the official SDK).
    """
    if capabilities.binary_output:
        return data
    return data.decode("utf-8", errors="replace").encode()
