"""A small, scriptable BoxLite server (both API generations) for protocol edge cases.

Not the project's BoxLite server (``tools/boxlite_server``, which runs real boxes):
this one keeps boxes as dicts and plays scripted executions, so a test can shape
exactly what goes over the wire — cut a stream after N events, answer 503 twice,
send a malformed event — and check what the client sent back.

Executions are driven by the command: ``cat`` echoes stdin to stdout until EOF;
``sleep`` waits for a signal or kill; anything else prints ``script`` (a list of
(stream, bytes)) or its argv, then exits with ``exit_code``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .serving import Recorder

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


@dataclass
class Exec:
    id: str
    box_id: str
    command: str
    args: list[str]
    tty: bool
    events: list[tuple[str, bytes]] = field(default_factory=list)
    exit_code: int | None = None
    status: str = "running"
    stdin: list[bytes] = field(default_factory=list)
    stdin_closed: bool = False
    signals: list[int] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, stream: str, data: bytes) -> None:
        self.events.append((stream, data))
        self.changed.set()

    def finish(self, code: int, status: str = "completed") -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.status = status
            self.changed.set()

    async def wait_change(self) -> None:
        self.changed.clear()
        await self.changed.wait()


@dataclass
class FakeBoxlite:
    """State and knobs of the fake server. ``app(generation)`` builds the ASGI app."""

    capabilities: dict[str, Any] = field(
        default_factory=lambda: {
            "snapshots_enabled": True,
            "clone_enabled": True,
            "export_enabled": True,
            "import_enabled": True,
            "tty_enabled": True,
            "streaming_enabled": True,
            "max_cpus": 8,
        }
    )
    config_extra: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_ttl: float = 3600
    path_prefix: str | None = None  # 0.10 routing slot (served and answered by /v1/me)
    me_key: str = "path_prefix"
    script: list[tuple[str, bytes]] | None = None
    exit_code: int = 0
    sse_ids: bool = True
    #: Per output connection (in order): close the stream after this many events.
    cuts: list[int] = field(default_factory=list)
    #: Cut by aborting the connection instead of ending the stream cleanly.
    abort_cuts: bool = False
    #: Forget the execution when cutting its stream (as a restarted server would).
    forget_on_cut: bool = False
    #: Replay from the first event on every connection, whatever Last-Event-ID says.
    ignore_last_event_id: bool = False
    #: Answer these statuses, in order, before handling the request (path suffix → list).
    fail_first: dict[str, list[int]] = field(default_factory=dict)
    #: Path suffixes whose response body is cut after the handler ran (once each).
    cut_responses: list[str] = field(default_factory=list)
    page_size: int = 0
    download_tar: bytes = b""
    export_bytes: bytes = b"BOXLITE-ARCHIVE"

    boxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, Exec] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    idempotency: dict[str, Response] = field(default_factory=dict)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    imports: list[tuple[str, bytes]] = field(default_factory=list)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    attach_queries: list[str] = field(default_factory=list)
    output_connections: int = 0
    attached: bool = False

    def __post_init__(self) -> None:
        self.recorder: Recorder | None = None

    # -- app -------------------------------------------------------------------------

    def app(self, generation: str = "0.9") -> Recorder:
        if generation == "0.9":
            root = "/v1"
            base = "/v1/default"
        else:
            root = "/v1"
            base = f"/v1/{self.path_prefix}" if self.path_prefix else "/v1"
        routes = [
            Route(f"{root}/config", self.config, methods=["GET"]),
            Route(f"{base}/boxes", self.guard(self.create_box), methods=["POST"]),
            Route(f"{base}/boxes", self.guard(self.list_boxes), methods=["GET"]),
            Route(f"{base}/boxes/import", self.guard(self.import_box), methods=["POST"]),
            Route(f"{base}/boxes/{{box}}", self.guard(self.get_box), methods=["GET"]),
            Route(f"{base}/boxes/{{box}}", self.guard(self.remove_box), methods=["DELETE"]),
            Route(f"{base}/boxes/{{box}}/start", self.guard(self.start_box), methods=["POST"]),
            Route(f"{base}/boxes/{{box}}/stop", self.guard(self.stop_box), methods=["POST"]),
            Route(f"{base}/boxes/{{box}}/exec", self.guard(self.exec), methods=["POST"]),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}",
                self.guard(self.get_exec),
                methods=["GET"],
            ),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}",
                self.guard(self.kill_exec),
                methods=["DELETE"],
            ),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}/output",
                self.guard(self.output),
                methods=["GET"],
            ),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}/input",
                self.guard(self.input),
                methods=["POST"],
            ),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}/signal",
                self.guard(self.signal),
                methods=["POST"],
            ),
            Route(
                f"{base}/boxes/{{box}}/executions/{{eid}}/resize",
                self.guard(self.resize),
                methods=["POST"],
            ),
            WebSocketRoute(f"{base}/boxes/{{box}}/executions/{{eid}}/attach", self.attach),
            Route(f"{base}/boxes/{{box}}/files", self.guard(self.upload), methods=["PUT"]),
            Route(f"{base}/boxes/{{box}}/files", self.guard(self.download), methods=["GET"]),
            Route(f"{base}/boxes/{{box}}/metrics", self.guard(self.box_metrics), methods=["GET"]),
            Route(f"{base}/metrics", self.guard(self.runtime_metrics), methods=["GET"]),
            Route(
                f"{base}/boxes/{{box}}/snapshots",
                self.guard(self.snapshot_create),
                methods=["POST"],
            ),
            Route(
                f"{base}/boxes/{{box}}/snapshots", self.guard(self.snapshot_list), methods=["GET"]
            ),
            Route(
                f"{base}/boxes/{{box}}/snapshots/{{snap}}",
                self.guard(self.snapshot_get),
                methods=["GET"],
            ),
            Route(f"{base}/boxes/{{box}}/clone", self.guard(self.clone), methods=["POST"]),
            Route(f"{base}/boxes/{{box}}/export", self.guard(self.export), methods=["POST"]),
            Route(f"{base}/images/pull", self.guard(self.pull), methods=["POST"]),
        ]
        if generation == "0.9":
            routes.append(Route(f"{root}/oauth/tokens", self.token, methods=["POST"]))
        else:
            routes.append(Route(f"{root}/me", self.me, methods=["GET"]))
        self.generation = generation
        self.recorder = Recorder(Starlette(routes=routes))
        return self.recorder

    # -- plumbing --------------------------------------------------------------------

    def authorized(self, headers: Any) -> bool:
        header = headers.get("authorization", "")
        if self.generation == "0.10":
            return self.api_key is None or header == f"Bearer {self.api_key}"
        if self.client_id is None:
            return True
        token = header.removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > asyncio.get_running_loop().time()

    def guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            for suffix, statuses in self.fail_first.items():
                if request.url.path.endswith(suffix) and statuses:
                    status = statuses.pop(0)
                    return Response(b"upstream trouble", status, media_type="text/plain")
            if not self.authorized(request.headers):
                return error(401, "invalid or expired access token", "UnauthorizedError")
            key = request.headers.get("idempotency-key")
            if key is not None and key in self.idempotency:
                return self.idempotency[key]
            response = await handler(request)
            if key is not None and response.status_code < 500:
                self.idempotency[key] = response
            for suffix in list(self.cut_responses):
                if request.url.path.endswith(suffix):
                    self.cut_responses.remove(suffix)
                    return _CutResponse(response)
            return response

        return guarded

    def box_or_404(self, key: str) -> dict[str, Any] | Response:
        for box in self.boxes.values():
            if key in (box["box_id"], box["name"]):
                return box
        return error(404, f"box not found: {key}", "NotFoundError")

    # -- endpoints -------------------------------------------------------------------

    async def config(self, request: Request) -> Response:
        return JSONResponse({"capabilities": self.capabilities, **self.config_extra})

    async def me(self, request: Request) -> Response:
        if not self.authorized(request.headers):
            return error(401, "invalid API key", "AuthError")
        return JSONResponse(
            {"sub": "u1", "principal_type": "user", "scopes": [], self.me_key: self.path_prefix}
        )

    async def token(self, request: Request) -> Response:
        form = dict((await request.form()).items())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return error(401, "bad client credentials", "UnauthorizedError")
        token = uuid.uuid4().hex
        self.tokens[token] = asyncio.get_running_loop().time() + self.token_ttl
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}
        )

    async def create_box(self, request: Request) -> Response:
        body = await request.json()
        name = body.get("name")
        if name and any(b["name"] == name for b in self.boxes.values()):
            return error(409, f"box {name} already exists", "AlreadyExistsError")
        box_id = uuid.uuid4().hex[:26].upper()
        self.boxes[box_id] = {
            "box_id": box_id,
            "name": name,
            "status": "configured",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "image": body.get("image", "alpine:latest"),
            "cpus": body.get("cpus", 1),
            "memory_mib": body.get("memory_mib", 512),
            "request": body,
        }
        return JSONResponse(self.public(self.boxes[box_id]), 201)

    @staticmethod
    def public(box: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in box.items() if k not in ("request", "stop_body")}

    async def list_boxes(self, request: Request) -> Response:
        boxes = [self.public(b) for b in self.boxes.values()]
        if not self.page_size:
            return JSONResponse({"boxes": boxes})
        start = int(request.query_params.get("pageToken", "0"))
        page = boxes[start : start + self.page_size]
        more = start + self.page_size < len(boxes)
        return JSONResponse(
            {"boxes": page, "next_page_token": str(start + self.page_size) if more else None}
        )

    async def get_box(self, request: Request) -> Response:
        box = self.box_or_404(request.path_params["box"])
        return box if isinstance(box, Response) else JSONResponse(self.public(box))

    async def remove_box(self, request: Request) -> Response:
        box = self.box_or_404(request.path_params["box"])
        if isinstance(box, Response):
            return box
        if box["status"] == "running" and request.query_params.get("force") != "true":
            return error(409, "box is running; use force", "InvalidStateError")
        del self.boxes[box["box_id"]]
        return Response(status_code=204)

    async def start_box(self, request: Request) -> Response:
        box = self.box_or_404(request.path_params["box"])
        if isinstance(box, Response):
            return box
        box["status"] = "running"
        return JSONResponse(self.public(box))

    async def stop_box(self, request: Request) -> Response:
        box = self.box_or_404(request.path_params["box"])
        if isinstance(box, Response):
            return box
        box["status"] = "stopped"
        box["stop_body"] = await request.body()
        return JSONResponse(self.public(box))

    async def exec(self, request: Request) -> Response:
        box = self.box_or_404(request.path_params["box"])
        if isinstance(box, Response):
            return box
        body = await request.json()
        box["status"] = "running"
        execution = Exec(
            uuid.uuid4().hex,
            box["box_id"],
            body["command"],
            body.get("args", []),
            body.get("tty", False),
        )
        self.executions[execution.id] = execution
        if execution.command == "timeout":
            execution.finish(-9, "timed_out")
        elif execution.command not in ("cat", "sleep"):
            chunks = (
                self.script
                if self.script is not None
                else [("stdout", " ".join([execution.command, *execution.args]).encode() + b"\n")]
            )
            for stream, data in chunks:
                execution.emit(stream, data)
            execution.finish(self.exit_code)
        return JSONResponse({"execution_id": execution.id}, 201)

    def exec_or_404(self, request: Request) -> Exec | Response:
        execution = self.executions.get(request.path_params["eid"])
        if execution is None:
            return error(404, "execution not found", "NotFoundError")
        return execution

    async def get_exec(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        return JSONResponse(
            {
                "execution_id": execution.id,
                "status": execution.status,
                "exit_code": execution.exit_code,
                "duration_ms": 7,
            }
        )

    async def kill_exec(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        execution.signals.append(9)
        execution.finish(-9, "killed")
        return Response(status_code=204)

    async def output(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        connection = self.output_connections
        self.output_connections += 1
        cut = self.cuts[connection] if connection < len(self.cuts) else None
        last = request.headers.get("last-event-id")
        start = int(last) if last and self.sse_ids and not self.ignore_last_event_id else 0
        return StreamingResponse(self.sse(execution, start, cut), media_type="text/event-stream")

    async def sse(self, execution: Exec, start: int, cut: int | None) -> AsyncIterator[bytes]:
        index = start
        sent = 0
        yield b": keep-alive\n\n"
        while True:
            while index < len(execution.events):
                if cut is not None and sent >= cut:
                    if self.forget_on_cut:
                        self.executions.pop(execution.id, None)
                    if self.abort_cuts:
                        raise ConnectionResetError("cut")
                    return
                stream, data = execution.events[index]
                index += 1
                sent += 1
                ident = f"id: {index}\n" if self.sse_ids else ""
                payload = '{"data":"' + base64.b64encode(data).decode() + '"}'
                yield f"{ident}event: {stream}\ndata: {payload}\n\n".encode()
                yield b"event: ping\ndata: {}\n\n"
            if execution.exit_code is not None:
                yield (
                    "event: exit\ndata: "
                    + json.dumps({"exit_code": execution.exit_code, "duration_ms": 5})
                    + "\n\n"
                ).encode()
                return
            await execution.wait_change()

    async def input(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        if execution.exit_code is not None:
            return error(409, "execution has exited", "InvalidStateError")
        data = await request.body()
        execution.stdin.append(data)
        if execution.command == "cat" and data:
            execution.emit("stdout", data)
        if request.headers.get("x-close-stdin") == "true":
            execution.stdin_closed = True
            if execution.command == "cat":
                execution.finish(0)
        return Response(status_code=204)

    async def signal(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        signum = (await request.json())["signal"]
        if execution.exit_code is not None:
            return error(409, "execution has exited", "InvalidStateError")
        execution.signals.append(signum)
        execution.finish(-signum, "killed")
        return Response(status_code=204)

    async def resize(self, request: Request) -> Response:
        execution = self.exec_or_404(request)
        if isinstance(execution, Response):
            return execution
        execution.signals.append(-1)
        return Response(status_code=204)

    async def attach(self, websocket: WebSocket) -> None:
        execution = self.executions.get(websocket.path_params["eid"])
        if execution is None:
            await websocket.close(code=4404)
            return
        if not self.authorized(websocket.headers):
            await websocket.close(code=4401)
            return
        self.attach_queries.append(websocket.url.query)
        connection = len(self.attach_queries) - 1
        cut = self.cuts[connection] if connection < len(self.cuts) else None
        offsets = {
            "stdout": int(websocket.query_params.get("stdout_offset", 0)),
            "stderr": int(websocket.query_params.get("stderr_offset", 0)),
        }
        await websocket.accept()
        reader = asyncio.create_task(self._ws_input(websocket, execution))
        try:
            position = {"stdout": 0, "stderr": 0}
            index = 0
            sent = 0
            while True:
                while index < len(execution.events):
                    stream, data = execution.events[index]
                    index += 1
                    begin = position[stream]
                    position[stream] += len(data)
                    skip = max(0, offsets[stream] - begin)
                    if skip >= len(data):
                        continue
                    if cut is not None and sent >= cut:
                        if self.forget_on_cut:
                            self.executions.pop(execution.id, None)
                        await websocket.close(1011)
                        return
                    sent += 1
                    channel = b"\x01" if stream == "stdout" else b"\x02"
                    await websocket.send_bytes(channel + data[skip:])
                if execution.exit_code is not None:
                    await websocket.send_text(
                        json.dumps({"type": "exit", "exit_code": execution.exit_code})
                    )
                    await websocket.close(1000)
                    return
                await execution.wait_change()
        except WebSocketDisconnect:
            pass
        finally:
            reader.cancel()

    async def _ws_input(self, websocket: WebSocket, execution: Exec) -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    data = message["bytes"]
                    execution.stdin.append(data)
                    if execution.command == "cat":
                        execution.emit("stdout", data)
                elif message.get("text") is not None:
                    frame = json.loads(message["text"])
                    if frame.get("type") == "stdin_eof":
                        execution.stdin_closed = True
                        if execution.command == "cat":
                            execution.finish(0)
        except (WebSocketDisconnect, RuntimeError):
            return

    async def upload(self, request: Request) -> Response:
        self.uploads.append((request.query_params["path"], await request.body()))
        return Response(status_code=204)

    async def download(self, request: Request) -> Response:
        return Response(self.download_tar, media_type="application/x-tar")

    async def box_metrics(self, request: Request) -> Response:
        return JSONResponse(
            {
                "commands_executed_total": 3,
                "exec_errors_total": 1,
                "memory_bytes": 1024,
                "boot_timing": {
                    "total_create_ms": 40,
                    "guest_boot_ms": 30,
                    "container_init_ms": 5,
                    "future_stage_ms": 9,
                },
            }
        )

    async def runtime_metrics(self, request: Request) -> Response:
        return JSONResponse(
            {
                "boxes_created_total": len(self.boxes),
                "boxes_failed_total": 0,
                "num_running_boxes": 0,
                "total_commands_executed": 2,
                "total_exec_errors": 0,
            }
        )

    async def snapshot_create(self, request: Request) -> Response:
        name = (await request.json())["name"]
        snap = {
            "id": uuid.uuid4().hex,
            "box_id": request.path_params["box"],
            "name": name,
            "created_at": 1_700_000_000,
            "guest_disk_bytes": 1,
            "container_disk_bytes": 2,
            "size_bytes": 3,
        }
        self.snapshots[name] = snap
        return JSONResponse(snap, 201)

    async def snapshot_list(self, request: Request) -> Response:
        return JSONResponse({"snapshots": list(self.snapshots.values())})

    async def snapshot_get(self, request: Request) -> Response:
        snap = self.snapshots.get(request.path_params["snap"])
        if snap is None:
            return error(404, "snapshot not found", "NotFoundError")
        return JSONResponse(snap)

    async def clone(self, request: Request) -> Response:
        body = await request.json()
        name = body.get("name")
        if name == "fail":
            return error(409, "cannot clone a running box", "InvalidStateError")
        box_id = uuid.uuid4().hex[:26].upper()
        self.boxes[box_id] = {
            "box_id": box_id,
            "name": name,
            "status": "stopped",
            "created_at": "2024-01-01T00:00:00Z",
            "image": "alpine",
            "cpus": 1,
            "memory_mib": 512,
        }
        return JSONResponse(self.boxes[box_id], 201)

    async def export(self, request: Request) -> Response:
        return Response(self.export_bytes, media_type="application/octet-stream")

    async def import_box(self, request: Request) -> Response:
        self.imports.append((request.query_params.get("name", ""), await request.body()))
        box_id = uuid.uuid4().hex[:26].upper()
        self.boxes[box_id] = {
            "box_id": box_id,
            "name": request.query_params.get("name"),
            "status": "stopped",
            "created_at": "2024-01-01T00:00:00Z",
            "image": "alpine",
            "cpus": 1,
            "memory_mib": 512,
        }
        return JSONResponse(self.boxes[box_id], 201)

    async def pull(self, request: Request) -> Response:
        reference = (await request.json())["reference"]
        if "missing" in reference:
            return error(422, f"image error: failed to pull {reference}", "ImageError")
        return JSONResponse(
            {
                "reference": reference,
                "repository": "r",
                "tag": "t",
                "id": "sha256:1",
                "cached_at": "2024-01-01T00:00:00Z",
            }
        )


class _CutResponse(Response):
    """Sends the headers and half the body of ``inner``, then drops the connection."""

    def __init__(self, inner: Response) -> None:
        super().__init__()
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = self.inner.body or b"{}"
        headers = [(k, v) for k, v in self.inner.raw_headers if k != b"content-length"]
        headers.append((b"content-length", str(len(body) + 10).encode()))
        await send(
            {"type": "http.response.start", "status": self.inner.status_code, "headers": headers}
        )
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        raise ConnectionResetError("cut on purpose")
