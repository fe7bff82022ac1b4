"""An SDK ``Box`` behind the runtime contract's ``Box``.

The SDK invalidates a box handle when the box stops ("Handle invalidated after
stop()"); the contract wants a handle valid for the box's life. So a ``LocalBox``
keeps the box id and fetches a fresh SDK handle whenever the old one is spent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..base import Box, Execution
from ..errors import (
    BoxliteError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    StoppedError,
    UnsupportedError,
    attach_unsupported,
)
from ..shared import clones, validation
from ..shared.boxpaths import check_box_path
from ..types import (
    BoxInfo,
    BoxMetrics,
    BoxStatus,
    ExecRequest,
    ExposedPort,
    SnapshotInfo,
    check_name,
)
from . import convert, files
from .execution import SDK_TIMEOUT_GRACE_SECONDS, LocalExecution, take_handles

if TYPE_CHECKING:
    from .runtime import LocalRuntime

T = TypeVar("T")


class LocalBox:
    """One box of a ``LocalRuntime``."""

    def __init__(self, runtime: LocalRuntime, handle: Any) -> None:
        self._runtime = runtime
        self._handle: Any | None = handle
        self._id = str(handle.id)
        self._name: str | None = handle.name or None

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str | None:
        return self._name

    def __repr__(self) -> str:
        return f"LocalBox(id={self._id!r}, name={self._name!r})"

    async def info(self) -> BoxInfo:
        raw = await self._runtime.sdk_info(self._id)
        if raw is None:
            raise NotFoundError(
                f"box {self._label} no longer exists; list the boxes to see which do"
            )
        return convert.box_info(raw)

    async def start(self) -> None:
        if (await self.info()).status is BoxStatus.RUNNING:
            return
        await self._call(f"start box {self._label}", lambda box: box.start())

    async def stop(self, timeout_seconds: float | None = None) -> None:
        """Stop the box. The SDK has no stop timeout: it stops the VM gracefully."""
        if (await self.info()).status in (BoxStatus.STOPPED, BoxStatus.CONFIGURED):
            return
        try:
            await self._call(f"stop box {self._label}", lambda box: box.stop())
        except InvalidStateError:
            if (await self.info()).status is not BoxStatus.STOPPED:
                raise
        finally:
            self._handle = None  # spent either way

    async def attach(
        self,
        execution_id: str,
        *,
        stdout_offset: int = 0,
        stderr_offset: int = 0,
        timeout_seconds: float | None = None,
    ) -> Execution:
        raise attach_unsupported("local", execution_id)

    async def exec(self, request: ExecRequest) -> LocalExecution:
        request = validation.exec_request(request)
        if request.user is not None and self._runtime.remote:
            raise UnsupportedError(
                "a per-exec user is not supported: the BoxLite REST API has no user field on "
                "exec; create the box with `user` set instead"
            )
        timeout = None
        if request.timeout_seconds is not None:
            timeout = request.timeout_seconds + SDK_TIMEOUT_GRACE_SECONDS
        env = list(request.env.items()) if request.env else None
        started = time.monotonic()
        raw = await self._call(
            f"run {request.command!r} in box {self._label}",
            lambda box: box.exec(
                request.command,
                list(request.args),
                env=env,
                tty=request.tty,
                user=request.user,
                timeout_secs=timeout,
                cwd=request.working_dir,
            ),
        )
        handles = await take_handles(raw)
        execution = LocalExecution(raw, handles, request, self._runtime.errors, started)
        self._runtime.track(execution)
        return execution

    async def copy_in(self, host_src: Path, box_dest: str) -> None:
        source = files.copy_in_source(host_src, box_dest)
        await self._call(
            f"copy {host_src} into box {self._label} at {box_dest}",
            lambda box: box.copy_in(source, box_dest),
        )

    async def copy_out(self, box_src: str, host_dest: Path) -> None:
        check_box_path(box_src, "source")
        async with files.staged_copy_out(box_src, host_dest) as staging:
            await self._call(
                f"copy {box_src} out of box {self._label} to {host_dest}",
                lambda box: box.copy_out(box_src, str(staging)),
            )

    async def read_file(self, box_src: str, max_bytes: int) -> bytes:
        check_box_path(box_src, "source")

        async def copy(src: str, staged: Path) -> None:
            await self._call(
                f"read {src} from box {self._label}",
                lambda box: box.copy_out(src, str(staged)),
            )

        return await files.read_through_copy(box_src, max_bytes, copy)

    async def metrics(self) -> BoxMetrics:
        if not self._runtime.remote and not (await self.info()).running:
            # The SDK would boot the box to read them; a box that is not running has
            # no live counters, and reading metrics must not start it.
            return BoxMetrics()
        raw = await self._call(f"read metrics of box {self._label}", lambda box: box.metrics())
        return convert.box_metrics(raw, rest=self._runtime.remote)

    async def snapshot_create(self, name: str) -> SnapshotInfo:
        check_name(name, "snapshot")
        await self._require_stopped("snapshot")
        raw = await self._call(
            f"snapshot box {self._label} as {name!r}", lambda box: box.snapshot.create(name=name)
        )
        return convert.snapshot_info(raw)

    async def snapshot_list(self) -> list[SnapshotInfo]:
        raw = await self._call(
            f"list snapshots of box {self._label}", lambda box: box.snapshot.list()
        )
        return [convert.snapshot_info(item) for item in raw or []]

    async def snapshot_get(self, name: str) -> SnapshotInfo:
        check_name(name, "snapshot")
        raw = await self._call(
            f"get snapshot {name!r} of box {self._label}", lambda box: box.snapshot.get(name)
        )
        if raw is None:
            raise NotFoundError(await self._no_snapshot(name))
        return convert.snapshot_info(raw)

    async def snapshot_remove(self, name: str) -> None:
        check_name(name, "snapshot")
        await self._call(
            f"remove snapshot {name!r} of box {self._label}", lambda box: box.snapshot.remove(name)
        )

    async def snapshot_restore(self, name: str) -> None:
        check_name(name, "snapshot")
        await self._require_stopped("restore a snapshot of")
        await self._call(
            f"restore box {self._label} to snapshot {name!r}",
            lambda box: box.snapshot.restore(name),
        )

    async def expose(self, port: int) -> ExposedPort:
        """The SDK's service tunnel (``box.network.tunnel(port)``): an opaque URI."""
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidArgumentError(f"port {port!r} is not a TCP port (1-65535)")

        async def tunnel(box: Any) -> Any:
            network = box.network() if callable(box.network) else box.network
            return await network.tunnel(port)

        answer = await self._call(f"expose port {port} of box {self._label}", tunnel)
        uri = answer if isinstance(answer, str) else getattr(answer, "uri", None)
        if callable(uri):  # the SDK's BoxTunnel.uri() is a method
            uri = uri()
        if uri is None and isinstance(answer, dict):
            uri = answer.get("uri")
        if not isinstance(uri, str) or not uri:
            raise UnsupportedError(
                f"the SDK gave no URI for port {port} of box {self._label}; box_expose "
                "needs the SDK's service tunnel"
            )
        return ExposedPort(port=port, url=uri)

    async def clone(self, name: str | None = None) -> LocalBox:
        if name is not None:
            check_name(name, "box")
        await self._require_stopped("clone")
        raw = await self._call(f"clone box {self._label}", lambda box: box.clone_box(name=name))
        return self._runtime.wrap(raw)

    async def clone_many(self, count: int, names: list[str] | None = None) -> list[Box]:
        async def remove(made: Box) -> None:
            await self._runtime.remove(made.id, force=True)

        return await clones.clone_all(count, names, self.clone, remove)

    async def export(self, dest: Path) -> Path:
        await self._require_stopped("export")
        final = files.export_target(dest, self._name or self._id)
        async with files.staged_file(final) as partial:
            written = await self._call(
                f"export box {self._label} to {final}", lambda box: box.export(dest=str(partial))
            )
            files.settle_export(Path(str(written)), partial)
        return final

    # -- internals ---------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return repr(self._name) if self._name else self._id

    async def _call(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``operation`` on the SDK handle, fetching a fresh one if it is spent."""
        errors = self._runtime.errors
        for attempt in (1, 2):
            handle = await self._sdk_handle()
            try:
                async with errors.translated(action):
                    return await operation(handle)
            except StoppedError as exc:
                if attempt == 2 or "invalidated" not in exc.message.lower():
                    raise
                self._handle = None
        raise AssertionError("unreachable")

    async def _sdk_handle(self) -> Any:
        if self._handle is None:
            handle = await self._runtime.sdk_get(self._id)
            if handle is None:
                raise NotFoundError(
                    f"box {self._label} no longer exists; list the boxes to see which do"
                )
            self._handle = handle
        return self._handle

    def release(self) -> None:
        """Drop the SDK handle (the runtime is closing)."""
        self._handle = None

    async def _require_stopped(self, verb: str) -> None:
        status = (await self.info()).status
        if status is BoxStatus.RUNNING or status is BoxStatus.STOPPING:
            raise InvalidStateError(
                f"cannot {verb} box {self._label} while it is {status.value}; stop it first",
                box=self._name or self._id,
                required_state="stopped",
            )
        if status is BoxStatus.CONFIGURED and not self._runtime.remote:
            # BoxLite makes a box's disk on first start; before that there is nothing to copy.
            raise InvalidStateError(
                f"cannot {verb} box {self._label}: it has never been started, so it has no "
                "disk yet; start it once (and stop it) first"
            )

    async def _no_snapshot(self, name: str) -> str:
        try:
            names = [s.name for s in await self.snapshot_list()]
        except BoxliteError:
            names = []
        existing = ", ".join(repr(n) for n in names) if names else "none"
        return f"box {self._label} has no snapshot {name!r}; its snapshots: {existing}"
