"""Vanishing MCP clients, in their own process so that they can die like real ones.

    python -m tools.leak_soak.worker --transport http --mode legacy --url URL --clients 20
    python -m tools.leak_soak.worker --transport stdio --home-root DIR --clients 10

Each client connects (streamable HTTP to ``--url``, or by starting its own
``python -m boxlite_mcp`` over stdio on ``<home-root>/c<i>``), then leaves boxes
and work behind, as an agent that crashes mid-task does:

- box ``c<i>a``: started by ``exec_run``, which leaves a background ``sleep`` in it;
- every other client also a box ``c<i>b`` that is never started;
- every ``--long-every``-th client an ``exec_start`` of a long ``sleep`` (a job it
  meant to come back to);
- every ``--inflight-every``-th client (offset 1) an ``exec_run`` of a long command
  still in flight (its first output received) when the process dies.

Every client connects first (``{"connected": true}`` once all have), then all wait
for a line on stdin before working. One JSON line per client on stdout (``client``,
``boxes``, ``execs``, ``long``, ``inflight``, ``protocol``, ``error``), then
``{"ready": ...}``. Then every client
stays connected and silent until the process is killed: the driver SIGKILLs it (a
crashed client: stdio servers see EOF, HTTP connections are reset, no DELETE is
sent), or leaves it running (a client that only stops talking).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tools.benchlib.procs import REPO, child_env
from tools.soaklib.calls import ok
from tools.soaklib.server import stdio_server_args

LONG_SECONDS = 600
START_TIMEOUT = 60.0


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _client(ns: argparse.Namespace, index: int, stack: AsyncExitStack) -> Client:
    if ns.transport == "stdio":
        home = Path(ns.home_root) / f"c{index}"
        errlog = stack.enter_context((Path(ns.home_root) / f"c{index}.log").open("a"))
        params = StdioServerParameters(
            command=sys.executable,
            args=stdio_server_args(home),
            cwd=str(REPO),
            env=child_env(**json.loads(ns.server_env)),
        )
        return Client(stdio_client(params, errlog=errlog), mode=ns.mode)
    transport = streamable_http_client(ns.url, terminate_on_close=False)
    return Client(transport, mode=ns.mode)


async def _work(
    client: Client, index: int, ns: argparse.Namespace, tg: anyio.abc.TaskGroup
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "client": index,
        "boxes": [],
        "execs": [],
        "long": False,
        "inflight": False,
        "protocol": client.protocol_version,
    }
    a = (await ok(client, "box_create", {"name": f"c{index}a"}))["box"]["id"]
    line["boxes"].append(a)
    ran = await ok(
        client,
        "exec_run",
        {"box": a, "command": f"echo ready; nohup sleep {LONG_SECONDS} >/dev/null 2>&1 &"},
    )
    line["execs"].append(ran["execution_id"])
    if index % 2 == 0:
        line["boxes"].append((await ok(client, "box_create", {"name": f"c{index}b"}))["box"]["id"])
    if ns.long_every and index % ns.long_every == 0:
        started = await ok(
            client,
            "exec_start",
            {"box": a, "command": f"sleep {LONG_SECONDS}", "timeout_seconds": LONG_SECONDS},
        )
        line["execs"].append(started["execution_id"])
        line["long"] = True
    if ns.inflight_every and index % ns.inflight_every == 1 % ns.inflight_every:
        first_output = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            first_output.set()

        async def run_forever() -> None:
            try:
                await client.call_tool(
                    "exec_run",
                    {
                        "box": a,
                        "command": f"echo started; sleep {LONG_SECONDS}",
                        "timeout_seconds": LONG_SECONDS,
                    },
                    progress_callback=on_progress,
                )
            except Exception:  # the connection may end first; the driver judges the boxes
                first_output.set()

        tg.start_soon(run_forever)
        with anyio.fail_after(START_TIMEOUT):
            await first_output.wait()
        line["inflight"] = True
    return line


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of an exception group: what actually went wrong."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Client:
    """One client's life: connect, wait for the go, work, report, then stay silent."""

    def __init__(self, ns: argparse.Namespace, index: int) -> None:
        self.ns = ns
        self.index = index
        self.connected = anyio.Event()
        self.reported = anyio.Event()
        self.ok = False

    def fail(self, exc: BaseException) -> None:
        if not self.reported.is_set():
            _emit(
                {
                    "client": self.index,
                    "boxes": [],
                    "execs": [],
                    "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                }
            )
            self.reported.set()
        self.connected.set()

    async def live(self, limiter: anyio.CapacityLimiter, go: anyio.Event) -> None:
        try:
            async with AsyncExitStack() as stack:
                async with limiter:  # (no deadline here: it would wrap the client's own scopes)
                    client = await stack.enter_async_context(_client(self.ns, self.index, stack))
                self.connected.set()
                await go.wait()
                async with anyio.create_task_group() as tg:  # inside the client's scopes
                    async with limiter:
                        with anyio.fail_after(START_TIMEOUT):
                            line = await _work(client, self.index, self.ns, tg)
                    _emit(line)
                    self.ok = True
                    self.reported.set()
                    await anyio.sleep_forever()  # connected and silent until killed
        except Exception as exc:  # report it (groups too); the driver counts failed clients
            self.fail(_innermost(exc))


async def main(ns: argparse.Namespace) -> None:
    """Connect every client, say so, wait for ``go`` on stdin, work, report ``ready``.

    The barrier keeps the work of all workers' clients together and away from the
    storm of stdio servers starting: a client slower than the idle TTL between two of
    its own calls would lose its box to the reaper, which is right but not the point.
    """
    limiter = anyio.CapacityLimiter(ns.concurrency)
    go = anyio.Event()
    clients = [_Client(ns, i) for i in range(ns.first, ns.first + ns.clients)]
    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(client.live, limiter, go)
        for client in clients:
            await client.connected.wait()
        _emit({"connected": True})
        await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        go.set()
        for client in clients:
            await client.reported.wait()
        ok_count = sum(c.ok for c in clients)
        _emit({"ready": True, "ok": ok_count, "failed": len(clients) - ok_count})


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.leak_soak.worker", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--transport", choices=["stdio", "http"], required=True)
    parser.add_argument("--mode", default="legacy", help="legacy, auto, or a protocol version")
    parser.add_argument("--url", help="the server (http)")
    parser.add_argument("--home-root", help="where each stdio client's server keeps its home")
    parser.add_argument("--server-env", default="{}", help="JSON: environment of stdio servers")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="index of the first client")
    parser.add_argument("--long-every", type=int, default=3)
    parser.add_argument("--inflight-every", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    ns = parser.parse_args(argv)
    if ns.transport == "http" and not ns.url:
        parser.error("--url is required with --transport http")
    if ns.transport == "stdio" and not ns.home_root:
        parser.error("--home-root is required with --transport stdio")
    return ns


if __name__ == "__main__":
    anyio.run(main, parse())
