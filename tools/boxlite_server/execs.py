"""Executions: start, status, kill, signal, resize, stdin by POST.

Output travels by ``sse.py`` (0.9) or ``ws.py`` (0.10); both read the
session's backlog (``sessions.py``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from boxlite_mcp.runtime.errors import InvalidArgumentError, UnsupportedError
from boxlite_mcp.runtime.types import ExecRequest

from .app import Op
from .sessions import ExecSession
from .state import Call, new_ulid

#: Signals a 0.10 client may send (POST /signal and the attach "signal" frame):
#: HUP INT QUIT ABRT USR1 USR2 TERM WINCH. SIGKILL is DELETE .../executions/{id}.
ALLOWED_SIGNALS_10 = frozenset({1, 2, 3, 6, 10, 12, 15, 28})


def exec_request(call: Call, body: dict[str, Any]) -> ExecRequest:
    command = body.get("command")
    if not isinstance(command, str) or not command:
        raise InvalidArgumentError("command is required: the program to run")
    fields: dict[str, Any] = {"command": command}
    for key in ("args", "env", "working_dir", "user", "timeout_seconds"):
        if body.get(key) is not None:
            fields[key] = body[key]
    if body.get("tty"):
        if not call.config.tty:
            raise UnsupportedError(
                "TTY executions are disabled on this server (capabilities.tty_enabled is false)"
            )
        fields["tty"] = True
    try:
        return ExecRequest(**fields)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"invalid exec request: {exc}") from exc


async def start_execution(call: Call) -> Response:
    request = exec_request(call, call.json())
    box = await call.box()
    execution = await box.exec(request)
    session = ExecSession(
        f"exec-{new_ulid()}",
        call.state.ids.wire(box.id),
        box.name,
        execution,
        request.tty,
        call.config,
    )
    call.state.executions.add(session)
    location = f"{call.root}/boxes/{call.path('box_id')}/executions/{session.id}"
    return JSONResponse(
        {"execution_id": session.id}, status_code=201, headers={"location": location}
    )


def session_of(call: Call) -> ExecSession:
    return call.state.executions.get(call.path("box_id"), call.path("exec_id"))


async def get_execution(call: Call) -> Response:
    return JSONResponse(session_of(call).info())


async def kill_execution(call: Call) -> Response:
    """0.10: SIGKILL and evict; an attached client gets the exit frame."""
    session = session_of(call)
    await session.kill()
    call.state.executions.evict(session.id)
    return Response(status_code=204)


async def signal_execution(call: Call) -> Response:
    signum = call.json().get("signal")
    if not isinstance(signum, int) or isinstance(signum, bool) or not 1 <= signum <= 64:
        raise InvalidArgumentError("signal must be a POSIX signal number (1..64)")
    session = session_of(call)
    if call.generation == "0.10" and signum not in ALLOWED_SIGNALS_10:
        raise InvalidArgumentError(
            f"signal {signum} is not allowed here (HUP, INT, QUIT, ABRT, USR1, USR2, TERM, "
            "WINCH); to kill, DELETE the execution"
        )
    if signum == 9:
        await session.kill()
    else:
        await session.execution.signal(signum)
    return Response(status_code=204)


async def resize_execution(call: Call) -> Response:
    body = call.json()
    cols, rows = body.get("cols"), body.get("rows")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (cols, rows)):
        raise InvalidArgumentError("cols and rows are required: integers >= 1")
    await session_of(call).execution.resize(int(cols), int(rows))  # type: ignore[arg-type]
    return Response(status_code=204)


async def send_input(call: Call) -> Response:
    """0.9 stdin: the body is written as it arrives; X-Close-Stdin: true closes after."""
    raw_close = call.request.headers.get("x-close-stdin", "false").lower()
    if raw_close not in ("true", "false"):
        raise InvalidArgumentError("X-Close-Stdin must be true or false")
    session = session_of(call)
    async for chunk in call.request.stream():
        if chunk:
            await session.execution.write_stdin(chunk)
    if raw_close == "true":
        await session.execution.close_stdin()
    return Response(status_code=204)


OPS = [
    Op("startExecution", "POST", "/boxes/{box_id}/exec", start_execution),
    Op("getExecution", "GET", "/boxes/{box_id}/executions/{exec_id}", get_execution),
    Op(
        "killExecution",
        "DELETE",
        "/boxes/{box_id}/executions/{exec_id}",
        kill_execution,
        generations=("0.10",),
    ),
    Op("signalExecution", "POST", "/boxes/{box_id}/executions/{exec_id}/signal", signal_execution),
    Op("resizeExecution", "POST", "/boxes/{box_id}/executions/{exec_id}/resize", resize_execution),
    Op(
        "sendExecutionInput",
        "POST",
        "/boxes/{box_id}/executions/{exec_id}/input",
        send_input,
        generations=("0.9",),
        stream_body=True,
    ),
]
