"""The runtime contract: what every runtime implements and all the MCP layer uses.

Three runtimes implement it (``bwrap``, ``rest``, ``local``); the contract test
suite in ``tests/contract/`` runs unchanged against each. Every method raises only
``boxlite_mcp.runtime.errors.BoxliteError`` subclasses.

Boxes are addressed by id or by name wherever a ``box`` argument is a string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .types import (
    BoxInfo,
    BoxMetrics,
    BoxOptions,
    ExecRequest,
    ExecResult,
    ExposedPort,
    OutputChunk,
    RuntimeInfo,
    RuntimeMetrics,
    SnapshotInfo,
)

#: Unread output an Execution keeps when nobody called ``output()`` (see Execution).
UNREAD_OUTPUT_LIMIT = 8 * 1024 * 1024


@runtime_checkable
class Execution(Protocol):
    """A command running in a box.

    Output contract:
    - ``output()`` is called at most once and yields chunks in the order produced on
      each stream, as they are produced (never buffered until exit). Binary-safe.
      The iterator ends when the process has exited and all output is delivered.
    - While a consumer iterates, a slow consumer slows the producer (bounded memory,
      nothing dropped).
    - If ``output()`` is never called, the process still runs to the end and
      ``wait()`` still returns; at most ``UNREAD_OUTPUT_LIMIT`` bytes of the earliest
      output are kept for a late ``output()`` call, the rest is discarded.
    - ``wait()`` may be called any number of times, by several tasks, before or after
      the output is read.
    """

    @property
    def id(self) -> str: ...

    def output(self) -> AsyncIterator[OutputChunk]: ...

    async def write_stdin(self, data: bytes) -> None:
        """Write to the process's stdin. InvalidStateError once stdin is closed."""

    async def close_stdin(self) -> None:
        """Signal EOF on stdin. Idempotent."""

    async def signal(self, signum: int) -> None:
        """Send a POSIX signal. No error if the process already exited."""

    async def kill(self) -> None:
        """SIGKILL the process (and its children). No error if it already exited."""

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the TTY. InvalidStateError when the execution has no TTY."""

    async def wait(self) -> ExecResult: ...


@runtime_checkable
class Box(Protocol):
    """One box. A handle stays valid while the box exists; methods re-read state."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    async def info(self) -> BoxInfo: ...

    async def start(self) -> None:
        """Start a configured or stopped box. Idempotent on a running box."""

    async def stop(self, timeout_seconds: float | None = None) -> None:
        """Stop the box; every process in it ends. Idempotent on a stopped box."""

    async def exec(self, request: ExecRequest) -> Execution:
        """Start a command. Starts a configured/stopped box first, as BoxLite does."""

    async def attach(
        self,
        execution_id: str,
        *,
        stdout_offset: int = 0,
        stderr_offset: int = 0,
        timeout_seconds: float | None = None,
    ) -> Execution:
        """Follow an execution started earlier, possibly by another process, by its id.

        What a replica taking over a dead replica's execution calls: ``output()``
        yields each stream from its offset on (bytes already had are not repeated);
        ``timeout_seconds`` is what is left of the command's own timeout. Only a
        runtime whose executions outlive the process that started them can:
        others raise UnsupportedError saying so. NotFoundError when the runtime no
        longer knows the execution.
        """

    async def copy_in(self, host_src: Path, box_dest: str) -> None:
        """Copy a host file or directory into the box, with BoxLite's tar semantics.

        A directory copies its contents into ``box_dest``. A file becomes one entry
        named after its basename; it lands at ``box_dest`` itself unless that ends
        with ``/`` or is an existing directory, in which case it lands inside it.
        """

    async def copy_out(self, box_src: str, host_dest: Path) -> None:
        """Copy a box file or directory to the host, with the same semantics.

        Unpacking never writes outside ``host_dest`` (no absolute paths, no ``..``,
        no links out) and is all-or-nothing: on error nothing is left half-written.
        """

    async def read_file(self, box_src: str, max_bytes: int) -> bytes:
        """One regular file's bytes, read through the runtime's file API.

        Never runs a program in the box (it works on an image without a shell or
        coreutils). A symlink is followed inside the box. The cap holds while the
        bytes move: a file over ``max_bytes`` stops the transfer once the cap is
        passed, and raises ``errors.too_big_for_transfer`` naming the path, its size
        when known and the cap. NotFoundError for a missing path;
        ``errors.not_a_regular_file`` for a directory or special file.
        """

    async def metrics(self) -> BoxMetrics: ...

    async def expose(self, port: int) -> ExposedPort:
        """Make the box's TCP ``port`` reachable from the host; where, in the result.

        Idempotent per port; the exposure ends with the box (or when it stops).
        UnsupportedError where the runtime cannot, saying why.
        """

    # Snapshots: of a stopped box. InvalidStateError while running.
    async def snapshot_create(self, name: str) -> SnapshotInfo: ...

    async def snapshot_list(self) -> list[SnapshotInfo]: ...

    async def snapshot_get(self, name: str) -> SnapshotInfo: ...

    async def snapshot_remove(self, name: str) -> None: ...

    async def snapshot_restore(self, name: str) -> None: ...

    async def clone(self, name: str | None = None) -> Box:
        """A new, stopped box with this (stopped) box's disk state."""

    async def clone_many(self, count: int, names: list[str] | None = None) -> list[Box]:
        """``count`` clones; all or nothing."""

    async def export(self, dest: Path) -> Path:
        """Write a ``.boxlite`` archive of this stopped box.

        ``dest`` is a file path, or an existing directory in which case the archive
        is ``<dest>/<name or id>.boxlite``. Returns the path written.
        """


@runtime_checkable
class Runtime(Protocol):
    """A place where boxes live."""

    async def info(self) -> RuntimeInfo: ...

    async def create(self, options: BoxOptions) -> Box:
        """Create a box (status ``configured``; it starts on first exec or ``start``)."""

    async def get(self, box: str) -> Box:
        """The box with this id or name. NotFoundError names what exists."""

    async def list(self) -> list[BoxInfo]: ...

    async def remove(self, box: str, force: bool = False) -> None:
        """Remove a box. A running box needs ``force`` (InvalidStateError otherwise)."""

    async def metrics(self) -> RuntimeMetrics: ...

    async def import_box(self, archive: Path, name: str | None = None) -> Box:
        """Create a box from a ``.boxlite`` archive written by ``Box.export``."""

    async def aclose(self) -> None:
        """Release connections and background tasks. Boxes are not removed."""
