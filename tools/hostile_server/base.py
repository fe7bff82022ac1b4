"""The well-behaved part: just enough of both API generations to reach the hostile part.

Every behaviour misbehaves in one operation only; the client must get there first
(configuration, token or identity, a box, an execution). This module answers all
operations correctly and minimally, from no state: every box id exists, every
execution ran ``echo hello`` and exited 0, every box is stopped (so it can be
exported; execs do not care). Routes are parsed here too:
``route(method, path)`` maps a path below ``/b/{behaviour}`` to an operation.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket

from .raw import Transports

NOW = "2026-01-01T00:00:00Z"
EXECUTION_ID = "exec-hostile-1"
HELLO = b"hello\n"


@dataclass(frozen=True)
class HostileConfig:
    """Sizes and paces of the hostile behaviours (quick for tests, full for the tool)."""

    big_bytes: int = 48 * 1024 * 1024  # size of "huge" bodies, lines, frames, bombs
    tar_entries: int = 20_000  # entries of the many-entries tar bomb
    trickle_seconds: float = 0.1  # pause between the bytes of a trickle
    endless_bytes: int = 1 << 62  # "endless" streams stop after this many bytes


@dataclass
class Ctx:
    """One request to one behaviour."""

    behaviour: str
    generation: str  # "0.9" or "0.10"
    op: str
    params: dict[str, str]
    config: HostileConfig
    transports: Transports
    request: Request | None = None
    websocket: WebSocket | None = None
    segment: str = ""  # the URL segment naming the behaviour, with its ~tag

    @property
    def query(self) -> dict[str, str]:
        source = self.request if self.request is not None else self.websocket
        return dict(source.query_params) if source is not None else {}


# -- routes --------------------------------------------------------------------------

_ID = r"([^/]+)"
_BOX_ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"boxes", "create"),
    ("GET", r"boxes", "list"),
    ("POST", r"boxes/import", "import"),
    ("GET", rf"boxes/{_ID}", "get"),
    ("DELETE", rf"boxes/{_ID}", "remove"),
    ("POST", rf"boxes/{_ID}/start", "start"),
    ("POST", rf"boxes/{_ID}/stop", "stop"),
    ("POST", rf"boxes/{_ID}/exec", "exec_create"),
    ("GET", rf"boxes/{_ID}/executions/{_ID}", "exec_status"),
    ("DELETE", rf"boxes/{_ID}/executions/{_ID}", "exec_kill"),
    ("GET", rf"boxes/{_ID}/executions/{_ID}/output", "output"),
    ("POST", rf"boxes/{_ID}/executions/{_ID}/(?:input|signal|resize)", "exec_control"),
    ("WS", rf"boxes/{_ID}/executions/{_ID}/attach", "attach"),
    ("GET", rf"boxes/{_ID}/files", "files_get"),
    ("PUT", rf"boxes/{_ID}/files", "files_put"),
    ("GET", rf"boxes/{_ID}/metrics", "metrics"),
    ("GET", rf"boxes/{_ID}/snapshots", "snapshot_list"),
    ("POST", rf"boxes/{_ID}/snapshots", "snapshot_create"),
    ("POST", rf"boxes/{_ID}/clone", "clone"),
    ("POST", rf"boxes/{_ID}/export", "export"),
    ("GET", r"metrics", "runtime_metrics"),
]
_COMPILED = [(method, re.compile(pattern + r"/?"), op) for method, pattern, op in _BOX_ROUTES]


def route(method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    """``(generation, operation, params)`` for a path below ``/b/{behaviour}/v1/``."""
    if path in ("config", "config/"):
        return "both", "config", {}
    if path == "oauth/tokens" and method == "POST":
        return "0.9", "token", {}
    if path == "me" and method == "GET":
        return "0.10", "me", {}
    generation = "0.10"
    if path.startswith("default/"):
        generation, path = "0.9", path.removeprefix("default/")
    for want, pattern, op in _COMPILED:
        found = pattern.fullmatch(path)
        if found is not None and want == method:
            groups = found.groups()
            params = {"box_id": groups[0]} if groups else {}
            if len(groups) > 1:
                params["exec_id"] = groups[1]
            return generation, op, params
    return None


# -- well-behaved answers ------------------------------------------------------------


async def pace() -> None:
    """Let the event loop run between the chunks of a big body.

    uvicorn's ``send`` returns at once, without suspending, when the client is gone
    (and while its buffer has room): a generator that never awaits anything else
    would spin forever and starve the server, disconnect handling included.
    """
    await asyncio.sleep(0)


def box_body(ctx: Ctx, box_id: str | None = None, name: str | None = "hostile") -> dict[str, Any]:
    body: dict[str, Any] = {
        "box_id": box_id or ctx.params.get("box_id") or "box-hostile-1",
        "name": name,
        "status": "stopped",
        "created_at": NOW,
        "updated_at": NOW,
        "pid": 1,
        "image": "alpine:latest",
        "cpus": 1,
        "memory_mib": 512,
        "labels": {},
    }
    return body


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sse_event(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


async def _hello_sse() -> AsyncIterator[bytes]:
    yield sse_event("stdout", '{"data":"aGVsbG8K"}', "6-0")
    yield sse_event("exit", '{"exit_code":0,"duration_ms":1}', "6-0")


async def answer(ctx: Ctx) -> Response:
    """The correct answer to an HTTP operation."""
    op = ctx.op
    if op == "config":
        return JSONResponse(
            {
                "defaults": {},
                "overrides": {},
                "capabilities": {
                    "snapshots_enabled": True,
                    "clone_enabled": True,
                    "export_enabled": True,
                    "import_enabled": True,
                    "tty_enabled": True,
                    "streaming_enabled": True,
                },
            }
        )
    if op == "token":
        return JSONResponse(
            {"access_token": "hostile-token", "token_type": "bearer", "expires_in": 3600}
        )
    if op == "me":
        return JSONResponse({"sub": "hostile", "path_prefix": ""})
    if op in ("create", "clone", "import"):
        return JSONResponse(box_body(ctx, "box-hostile-1"), status_code=201)
    if op == "get":
        return JSONResponse(box_body(ctx))
    if op == "list":
        return JSONResponse({"boxes": [box_body(ctx, "box-hostile-1")]})
    if op in ("remove", "start", "stop", "exec_kill", "exec_control", "files_put"):
        return Response(status_code=204)
    if op == "exec_create":
        return JSONResponse({"execution_id": EXECUTION_ID}, status_code=201)
    if op == "exec_status":
        return JSONResponse(
            {
                "execution_id": ctx.params.get("exec_id"),
                "status": "completed",
                "exit_code": 0,
                "duration_ms": 1,
            }
        )
    if op == "output":
        return StreamingResponse(_hello_sse(), media_type="text/event-stream")
    if op == "files_get":
        return Response(tar_of({"hello.txt": HELLO}), media_type="application/x-tar")
    if op in ("metrics", "runtime_metrics"):
        return JSONResponse({})
    if op == "snapshot_list":
        return JSONResponse({"snapshots": []})
    if op == "snapshot_create":
        return JSONResponse(
            {
                "id": "snap-1",
                "box_id": ctx.params["box_id"],
                "name": "s",
                "created_at": 0,
                "size_bytes": 0,
            },
            status_code=201,
        )
    if op == "export":
        return Response(b"BOXLITE-EXPORT", media_type="application/octet-stream")
    return JSONResponse(
        {"error": {"message": f"no operation {op}", "type": "NotFoundError"}}, status_code=404
    )


async def attach(ctx: Ctx) -> None:
    """The correct 0.10 attach: ``hello`` on stdout, exit 0, normal close."""
    assert ctx.websocket is not None
    await ctx.websocket.accept()
    await ctx.websocket.send_bytes(b"\x01" + HELLO)
    await ctx.websocket.send_text(
        json.dumps({"type": "exit", "exit_code": 0, "stdout_bytes": len(HELLO), "stderr_bytes": 0})
    )
    await ctx.websocket.close(1000)
