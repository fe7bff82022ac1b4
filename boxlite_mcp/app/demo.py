"""``boxlite-mcp demo``: the server over stdio, a real MCP client, a live transcript.

The demo starts ``python -m boxlite_mcp`` as a subprocess, connects the SDK's
``Client`` to it and walks what an agent would do: create a box, run a program
whose output streams in while it runs, write and read a file, snapshot, break
something, restore, look at metrics, clean up. Every step checks its result;
the first surprise ends the demo with a non-zero status and the reason.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

from ..settings import Settings, env_name

#: A program that prints a line every half second: streaming shows as a steady trickle.
TICKS = 8
TICK_SECONDS = 0.5
TICKER = f"""\
import time
for i in range(1, {TICKS + 1}):
    print(f"tick {{i}} of {TICKS}: {{i * i:3d}} = {{i}} squared", flush=True)
    time.sleep({TICK_SECONDS})
"""
NOTE_PATH = "/root/boxlite-demo-note.txt"
NOTE = "Boxes keep their files until you remove them.\n"
SNAPSHOT = "before-break"
STEP_TIMEOUT = 120.0


class DemoFailure(Exception):
    """A step did not go as expected; the message says how."""


class Transcript:
    """Readable, flushed-per-line output with time since the start."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._start = time.monotonic()
        self.steps = 0

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def line(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def step(self, title: str) -> None:
        self.steps += 1
        self.line()
        self.line(f"[{self.elapsed():6.2f}s] {self.steps}. {title}")

    def say(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line(f"           {part}")

    def live(self, text: str) -> None:
        for part in text.splitlines():
            self.line(f"[{self.elapsed():6.2f}s]    | {part}")


def server_parameters(settings: Settings, environ: Mapping[str, str]) -> StdioServerParameters:
    """How to start the server: this Python, stdio, the demo's runtime settings."""
    args = ["-m", "boxlite_mcp", "--transport", "stdio", "--runtime", settings.runtime]
    args += ["--log-level", "warning" if settings.log_level == "info" else settings.log_level]
    if settings.url:
        args += ["--url", settings.url]
    if settings.home is not None:
        args += ["--home", str(settings.home)]
    env = dict(environ)
    env.pop(env_name("transport"), None)
    return StdioServerParameters(command=sys.executable, args=args, env=env)


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of (nested) exception groups: what actually went wrong."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


class Demo:
    """The scenario, one method per step; ``call`` checks every tool result."""

    def __init__(self, client: Client, transcript: Transcript) -> None:
        self.client = client
        self.t = transcript
        self.box = f"demo-{secrets.token_hex(3)}"
        self.created = False

    async def call(self, tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with anyio.fail_after(STEP_TIMEOUT):
            result = await self.client.call_tool(tool, args, **kwargs)
        if result.is_error:
            raise DemoFailure(f"{tool} failed: {_text(result)}")
        return dict(result.structured_content or {})

    async def call_expecting_error(self, tool: str, args: dict[str, Any]) -> str:
        with anyio.fail_after(STEP_TIMEOUT):
            result = await self.client.call_tool(tool, args)
        if not result.is_error:
            raise DemoFailure(f"{tool} succeeded where it should have failed")
        return _text(result)

    async def run(self) -> None:
        await self.runtime_info()
        await self.create()
        await self.stream()
        await self.files()
        await self.snapshot()
        await self.break_it()
        await self.restore()
        await self.metrics()
        await self.clean_up()

    async def runtime_info(self) -> None:
        self.t.step("Which runtime is this?  (runtime_info)")
        info = await self.call("runtime_info", {})
        runtime = info["runtime"]
        self.t.say(f"runtime: {runtime['name']}  -  {info['reason']}")
        self.t.say(f"isolation: {runtime['isolation']}")
        binary = runtime.get("details", {}).get("bwrap")
        if binary:
            self.t.say(f"bwrap: {binary}")

    async def create(self) -> None:
        self.t.step(f"Create a box named {self.box}  (box_create)")
        created = await self.call("box_create", {"name": self.box})
        self.created = True
        box = created["box"]
        self.t.say(f"id {box['id']}, status {box['status']}, image {box['image']}")
        self.t.say(f"lifetime: {box['lifetime']['removed_when']}")

    async def stream(self) -> None:
        self.t.step(
            f"Run a Python program that prints a line every {TICK_SECONDS}s  "
            "(exec_run, output arriving as progress notifications)"
        )
        program = {"box": self.box, "path": "/tmp/ticker.py", "content": TICKER}
        await self.call("file_write", program)
        arrivals: list[float] = []
        all_arrived = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message:
                arrivals.extend(self.t.elapsed() for _ in message.splitlines())
                self.t.live(message)
            if len(arrivals) >= TICKS:
                all_arrived.set()

        started = self.t.elapsed()
        result = await self.call(
            "exec_run",
            {"box": self.box, "argv": ["python3", "/tmp/ticker.py"], "timeout_seconds": 60},
            progress_callback=on_progress,
        )
        finished = self.t.elapsed()
        self.t.say(
            f"exit code {result['exit_code']} after {result['duration_ms']} ms; "
            f"{len(result['stdout'].splitlines())} lines in the result"
        )
        if result["exit_code"] != 0:
            raise DemoFailure(f"the program failed: {result['stderr'] or result['error']}")
        lines = result["stdout"].splitlines()
        if len(lines) != TICKS or not lines[-1].startswith(f"tick {TICKS}"):
            raise DemoFailure(f"expected {TICKS} tick lines in the result, got {lines!r}")
        with anyio.move_on_after(5):  # the last notifications may trail the result
            await all_arrived.wait()
        if len(arrivals) < TICKS:
            raise DemoFailure(
                f"only {len(arrivals)} of {TICKS} lines arrived as progress notifications"
            )
        spread = arrivals[-1] - arrivals[0]
        expected = (TICKS - 1) * TICK_SECONDS
        if spread < expected / 2:
            raise DemoFailure(
                f"output was not streamed: {TICKS} lines arrived within {spread:.2f}s "
                f"of each other, the program took {finished - started:.2f}s"
            )
        self.t.say(f"lines arrived over {spread:.1f}s, as they were printed")

    async def files(self) -> None:
        self.t.step(f"Write {NOTE_PATH} and read it back  (file_write, file_read)")
        await self.call("file_write", {"box": self.box, "path": NOTE_PATH, "content": NOTE})
        read = await self.call("file_read", {"box": self.box, "path": NOTE_PATH})
        if read["content"] != NOTE:
            raise DemoFailure(f"read back {read['content']!r}, wrote {NOTE!r}")
        self.t.say(f"read back {read['size_bytes']} bytes: {read['content'].strip()!r}")

    async def snapshot(self) -> None:
        self.t.step(f"Stop the box and snapshot it as {SNAPSHOT!r}  (box_stop, snapshot_create)")
        await self.call("box_stop", {"box": self.box})
        snap = await self.call("snapshot_create", {"box": self.box, "name": SNAPSHOT})
        self.t.say(f"snapshot {snap['snapshot']['name']}: {snap['snapshot']['size_bytes']} bytes")

    async def break_it(self) -> None:
        self.t.step("Break something: delete the file  (exec_run rm)")
        result = await self.call("exec_run", {"box": self.box, "command": f"rm -v {NOTE_PATH}"})
        self.t.say(result["stdout"].strip() or f"exit code {result['exit_code']}")
        error = await self.call_expecting_error("file_read", {"box": self.box, "path": NOTE_PATH})
        self.t.say(f"file_read now says: {error}")

    async def restore(self) -> None:
        self.t.step(f"Restore {SNAPSHOT!r} and look again  (box_stop, snapshot_restore, file_read)")
        await self.call("box_stop", {"box": self.box})
        restored = await self.call("snapshot_restore", {"box": self.box, "name": SNAPSHOT})
        self.t.say(restored["message"])
        read = await self.call("file_read", {"box": self.box, "path": NOTE_PATH})
        if read["content"] != NOTE:
            raise DemoFailure(f"after restore the file holds {read['content']!r}")
        self.t.say(f"the file is back: {read['content'].strip()!r}")

    async def metrics(self) -> None:
        self.t.step("Metrics  (box_metrics)")
        metrics = (await self.call("box_metrics", {"box": self.box}))["metrics"]
        shown = {
            k: v for k, v in metrics.items() if v is not None and (v != 0 or k.endswith("_total"))
        }
        for key, value in shown.items():
            self.t.say(f"{key}: {value}")
        if metrics.get("commands_executed_total", 0) < 1:
            raise DemoFailure("box_metrics counts no executed commands")

    async def clean_up(self) -> None:
        self.t.step("Clean up  (box_remove)")
        removed = await self.call("box_remove", {"box": self.box, "force": True})
        self.created = False
        self.t.say(removed["message"])
        listed = await self.call("box_list", {})
        if any(b["name"] == self.box for b in listed["boxes"]):
            raise DemoFailure("the box is still listed after box_remove")


async def run_demo(settings: Settings, out: TextIO | None = None) -> int:
    """Walk the scenario; 0 when every step went as expected, 1 otherwise."""
    t = Transcript(out or sys.stdout)
    params = server_parameters(settings, os.environ)
    t.line(f"boxlite-mcp demo: starting the server over stdio (runtime {settings.runtime})")
    t.line("  " + " ".join([os.path.basename(params.command), *params.args]))
    demo: Demo | None = None
    try:
        async with Client(params) as client:
            info = client.server_info
            name = f"{info.name} {info.version}".strip() if info else "the server"
            t.line(f"connected to {name}, protocol {client.protocol_version}")
            demo = Demo(client, t)
            try:
                await demo.run()
            finally:
                if demo.created:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                        await client.call_tool("box_remove", {"box": demo.box, "force": True})
    except Exception as exc:  # a step went wrong, the server did not start, the link broke ...
        leaf = _innermost(exc)
        t.line()
        if isinstance(leaf, DemoFailure):
            t.line(f"DEMO FAILED at step {t.steps}: {leaf}")
        else:
            text = str(leaf).strip().splitlines()[0] if str(leaf).strip() else ""
            what = f"{type(leaf).__name__}: {text}".rstrip(": ")
            if t.steps == 0:
                what = f"the server did not start or answer ({what})"
            t.line(f"DEMO FAILED at step {t.steps}: {what}")
            t.line("  (the server's own messages, if any, are on stderr)")
        return 1
    t.line()
    t.line(f"[{t.elapsed():6.2f}s] All {t.steps} steps went as expected.")
    return 0
