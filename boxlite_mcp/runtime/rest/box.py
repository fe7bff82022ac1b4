"""``RestBox``: one box on a BoxLite server, addressed by its id.

A handle holds the id, the name and the execution tasks' registry of its
runtime; every method asks the server, so a handle stays valid while the box
exists and answers NotFoundError once it does not.
"""

from __future__ import annotations

# asyncio: the pre-connect is a task that outlives this call (no task group owns it).
import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx

from ..base import Box
from ..errors import InvalidArgumentError, InvalidStateError, UnsupportedError
from ..shared import clones, validation
from ..shared.identity import BoxIdentity
from ..types import (
    BoxInfo,
    BoxMetrics,
    BoxStatus,
    ExecRequest,
    ExposedPort,
    NetworkSpec,
    NetworkStatus,
    SnapshotInfo,
    check_name,
)
from . import capabilities, files
from .bodies import Answer, paced
from .client import RestClient
from .errors import unavailable
from .exec_sse import SseExecution
from .exec_ws import WsExecution, discard_preconnect
from .execution import RestExecution
from .ports import PublishedPorts
from .types import (
    ExecResponse,
    ListSnapshotsResponse,
    WireBox,
    WireBoxMetrics,
    WireSnapshot,
    WireTunnel,
    parse,
)

#: Export archives are written in pieces of this size (each write is one worker-thread hop).
_WRITE_BYTES = 1024 * 1024


class RestBox(BoxIdentity):
    """The runtime contract's ``Box`` over the REST API."""

    def __init__(
        self,
        client: RestClient,
        tasks: set[asyncio.Task[None]],
        ports: PublishedPorts,
        info: BoxInfo,
    ) -> None:
        self._client = client
        self._tasks = tasks
        self._ports = ports
        super().__init__(info.id, info.name)

    def _label(self) -> str:
        return f"box {self.reference}"

    @contextlib.contextmanager
    def _needs_stopped(self) -> Iterator[None]:
        """Both API documents define this operation on a stopped box: a conflict means it
        is not stopped."""
        try:
            yield
        except InvalidStateError as exc:
            raise exc.about(self.reference).requiring("stopped") from None

    async def _url(self, *tail: str) -> str:
        return await self._client.url("boxes", self._id, *tail)

    def _box(self, answer: Answer, what: str) -> RestBox:
        info = parse(WireBox, answer.content, what).to_info()
        return RestBox(self._client, self._tasks, self._ports, info)

    # -- lifecycle -------------------------------------------------------------------

    async def info(self) -> BoxInfo:
        response = await self._client.request(
            "GET", await self._url(), what=f"read {self._label()}"
        )
        info = parse(WireBox, response.content, f"read {self._label()}").to_info()
        self._name = info.name
        exposed = self._ports.of(self._id)
        if exposed and info.network_status is None:
            policy = (info.network or NetworkSpec()).mode
            info = info.model_copy(
                update={
                    "network_status": NetworkStatus(
                        policy=f"network {policy}, as the BoxLite server enforces it",
                        exposed=exposed,
                    )
                }
            )
        return info

    async def start(self) -> None:
        await self._client.request(
            "POST",
            await self._url("start"),
            idempotency_key=True,
            what=f"start {self._label()}",
        )

    async def stop(self, timeout_seconds: float | None = None) -> None:
        if timeout_seconds is not None and timeout_seconds < 0:
            raise InvalidArgumentError(f"stop timeout must be >= 0, got {timeout_seconds}")
        body = {"timeout_seconds": timeout_seconds} if timeout_seconds is not None else None
        await self._client.request(
            "POST",
            await self._url("stop"),
            json=body,
            idempotency_key=True,
            what=f"stop {self._label()}",
        )

    # -- exec ------------------------------------------------------------------------

    async def exec(self, request: ExecRequest) -> RestExecution:
        request = validation.exec_request(request)
        if request.user is not None:
            raise UnsupportedError(
                "the BoxLite REST API cannot run a command as another user (ExecRequest has "
                "no 'user'); set the box's user when creating it, or use 'su'/'runuser'"
            )
        body: dict[str, object] = {"command": request.command}
        if request.args:
            body["args"] = request.args
        if request.env:
            body["env"] = request.env
        if request.timeout_seconds is not None:
            body["timeout_seconds"] = request.timeout_seconds
        if request.working_dir is not None:
            body["working_dir"] = request.working_dir
        if request.tty:
            body["tty"] = True
        url = await self._url("exec")
        websocket = self._client.generation == "0.10"
        # 0.10 attaches on a connection of its own: open it while the POST is in flight.
        preconnect = (
            asyncio.get_running_loop().create_task(self._client.upgrades.open_stream(url))
            if websocket
            else None
        )
        try:
            response = await self._client.request(
                "POST",
                url,
                json=body,
                idempotency_key=True,
                what=f"run {request.command!r} in {self._label()}",
                lane=True,
            )
            execution_id = parse(ExecResponse, response.content, "start an exec").execution_id
        except BaseException:
            await discard_preconnect(preconnect)
            raise
        execution: RestExecution
        if websocket:
            execution = WsExecution(self._client, self._id, execution_id, request)
            execution.preconnect = preconnect
        else:
            execution = SseExecution(self._client, self._id, execution_id, request)
        execution.start(self._tasks)
        return execution

    async def attach(
        self,
        execution_id: str,
        *,
        stdout_offset: int = 0,
        stderr_offset: int = 0,
        timeout_seconds: float | None = None,
    ) -> RestExecution:
        """Follow an execution by its id: 0.10 attaches with the offsets (the server
        resumes each stream after them); 0.9 reads the output stream from the start and
        skips each stream's first bytes (its event ids are opaque, not offsets), so it
        needs a server that still holds them. NotFoundError when the server lost it."""
        if stdout_offset < 0 or stderr_offset < 0:
            raise InvalidArgumentError(
                f"attach offsets must be >= 0 (stdout {stdout_offset}, stderr {stderr_offset})"
            )
        request = ExecRequest(command="(re-attached)", timeout_seconds=timeout_seconds)
        offsets = (stdout_offset, stderr_offset)
        await self._client.ensure_ready()
        execution: RestExecution
        if self._client.generation == "0.10":
            execution = WsExecution(self._client, self._id, execution_id, request, offsets=offsets)
        else:
            execution = SseExecution(self._client, self._id, execution_id, request, offsets=offsets)
        await execution.check_known()
        execution.start(self._tasks)
        return execution

    # -- files and metrics -----------------------------------------------------------

    async def copy_in(self, host_src: Path, box_dest: str) -> None:
        await files.copy_in(self._client, self._id, host_src, box_dest)

    async def copy_out(self, box_src: str, host_dest: Path) -> None:
        await files.copy_out(self._client, self._id, box_src, host_dest)

    async def read_file(self, box_src: str, max_bytes: int) -> bytes:
        return await files.read_file(self._client, self._id, box_src, max_bytes)

    async def metrics(self) -> BoxMetrics:
        response = await self._client.request(
            "GET", await self._url("metrics"), what=f"read the metrics of {self._label()}"
        )
        return parse(WireBoxMetrics, response.content, "read box metrics").to_metrics()

    # -- snapshots -------------------------------------------------------------------

    async def snapshot_create(self, name: str) -> SnapshotInfo:
        check_name(name, "snapshot")
        await capabilities.require(self._client, "snapshots")
        with self._needs_stopped():
            response = await self._client.request(
                "POST",
                await self._url("snapshots"),
                json={"name": name},
                what=f"snapshot {self._label()} as {name!r}",
            )
        return parse(WireSnapshot, response.content, "create a snapshot").to_info()

    async def snapshot_list(self) -> list[SnapshotInfo]:
        await capabilities.require(self._client, "snapshots")
        response = await self._client.request(
            "GET", await self._url("snapshots"), what=f"list the snapshots of {self._label()}"
        )
        listed = parse(ListSnapshotsResponse, response.content, "list snapshots")
        return [snapshot.to_info() for snapshot in listed.snapshots]

    async def snapshot_get(self, name: str) -> SnapshotInfo:
        await capabilities.require(self._client, "snapshots")
        response = await self._client.request(
            "GET",
            await self._url("snapshots", name),
            what=f"read snapshot {name!r} of {self._label()}",
        )
        return parse(WireSnapshot, response.content, "read a snapshot").to_info()

    async def snapshot_remove(self, name: str) -> None:
        await capabilities.require(self._client, "snapshots")
        await self._client.request(
            "DELETE",
            await self._url("snapshots", name),
            what=f"remove snapshot {name!r} of {self._label()}",
        )

    async def snapshot_restore(self, name: str) -> None:
        await capabilities.require(self._client, "snapshots")
        with self._needs_stopped():
            await self._client.request(
                "POST",
                await self._url("snapshots", name, "restore"),
                what=f"restore {self._label()} from snapshot {name!r}",
            )

    async def expose(self, port: int) -> ExposedPort:
        """0.10: the box service tunnel (an opaque URI); 0.9: a port published at create."""
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidArgumentError(f"port {port!r} is not a TCP port (1-65535)")
        await self._client.ensure_ready()
        known = self._ports.get(self._id, port)
        if known is not None:
            return known
        if self._client.generation != "0.10":
            raise UnsupportedError(
                f"box_expose of port {port} of {self._label()}: a BoxLite 0.9 server publishes "
                "a box's ports only when the box is created, and this box was not created "
                f"with port {port}; create a box with ports=[{port}] (box_create's ports) "
                "and run the service there"
            )
        response = await self._client.request(
            "POST",
            await self._url("network", "tunnel"),
            params={"port": str(port)},
            idempotent=True,
            what=f"expose port {port} of {self._label()}",
        )
        tunnel = parse(WireTunnel, response.content, f"expose port {port}")
        return ExposedPort(port=port, url=tunnel.uri)

    # -- clone and export ------------------------------------------------------------

    async def clone(self, name: str | None = None) -> RestBox:
        if name is not None:
            check_name(name, "box")
        await capabilities.require(self._client, "clone")
        with self._needs_stopped():
            response = await self._client.request(
                "POST",
                await self._url("clone"),
                json={"name": name} if name else {},
                what=f"clone {self._label()}",
            )
        return self._box(response, "clone a box")

    async def clone_many(self, count: int, names: list[str] | None = None) -> list[Box]:
        clones.check_batch(count, names)
        await capabilities.require(self._client, "clone")

        async def remove(made: Box) -> None:
            await self._client.request(
                "DELETE",
                await self._client.url("boxes", made.id),
                params={"force": "true"},
                idempotency_key=True,
            )

        return await clones.clone_all(count, names, self.clone, remove)

    async def export(self, dest: Path) -> Path:
        await capabilities.require(self._client, "export")
        # Both documents define no error answer for export, only "exports a stopped box":
        # check first, so a running box is a clear InvalidStateError on any server.
        status = (await self.info()).status
        if status in (BoxStatus.RUNNING, BoxStatus.STOPPING, BoxStatus.PAUSED):
            raise InvalidStateError(
                f"cannot export {self._label()} while it is {status.value}; stop it first",
                box=self.reference,
                required_state="stopped",
            )
        is_dir = await anyio.Path(dest).is_dir()
        target = dest / f"{self.reference}.boxlite" if is_dir else dest
        if not await anyio.Path(target.parent).is_dir():
            raise InvalidArgumentError(
                f"cannot export to {target}: {target.parent} is not an existing directory"
            )
        partial = anyio.Path(target.parent / f".{target.name}.partial-{secrets.token_hex(6)}")
        url = await self._url("export")
        try:
            async with await anyio.open_file(partial, "wb") as out:
                try:
                    async with self._client.stream(
                        "POST",
                        url,
                        json={},
                        what=f"export {self._label()}",
                    ) as response:
                        pending = bytearray()
                        body = paced(
                            response.aiter_raw(),
                            window=self._client.settings.timeout,
                            what=f"export {self._label()}",
                        )
                        async for chunk in body:
                            pending += chunk
                            if len(pending) >= _WRITE_BYTES:
                                await out.write(bytes(pending))
                                pending.clear()
                        await out.write(bytes(pending))
                except httpx.TransportError as exc:
                    raise unavailable(url, exc) from exc
            await partial.replace(target)
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot write the export archive to {target}: {exc.strerror or exc}"
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                await partial.unlink()
        return target
