"""The tool-call fuzz: thousands of generated calls, none may crash the server.

Calls go in rounds over the tools the server lists, a few per tool at a time; their
arguments are drawn with hypothesis from the input schemas it serves (``list_tools``),
about half valid-shaped (``schemagen.arguments``, fed real box ids, execution ids and
paths) and half deliberately broken (``schemagen.hostile``).
Most go to an in-memory ``Client`` (both protocol eras) of a server over a bwrap
runtime in this process; a share goes to a real ``python -m boxlite_mcp`` over stdio.

Every answer is judged (``calls.crash_reason``): a success, or an ``isError`` result
with a clear message; never the SDK's bare ``Error executing tool <name>`` (an
unanticipated exception), a JSON-RPC internal error, a traceback, internals, a
secret (a bearer token planted in the server's environment), or a hang. The
server's own log must show no ERROR after a call. Every ``batch`` calls the server
must still answer (``list_tools``, ``runtime_info``, a ping in the handshake era),
then the run's boxes are cleaned up and its fixture (a running box ``dev``, a
stopped box ``stopped`` with snapshot ``s``, a running and a finished execution)
restored, so the per-owner box limit never wedges the run. At the end: sentinel
files outside the allowed host root are unchanged and nothing new appeared outside
it, and no box is left in either server's runtime, on the host or in its home.

``copy_out`` of the host image's big directories (``/``, ``/usr``, ``/root``...)
is replaced by ``/tmp/fuzz`` before sending: it would pack gigabytes of the host
(up to the 8 GiB copy cap) before being refused, which is right but slow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import secrets
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.server import build_server
from boxlite_mcp.settings import Settings
from tools.benchlib.procs import REPO, child_env
from tools.fuzz_tools.schemagen import MUTATIONS, Pool, arguments, hostile
from tools.soaklib import host
from tools.soaklib.calls import ToolFailed, crash_reason, error_core, ok, text_of
from tools.soaklib.server import settings_env, stdio_server_args
from tools.soaklib.table import render

CALL_TIMEOUT = 60.0
FIXTURE_BOXES = ("dev", "stopped")
#: Top-level directories of the host image that copy_out would copy gigabytes of.
HEAVY_TOP = {
    "",
    "usr",
    "root",
    "var",
    "opt",
    "home",
    "work",
    "lib",
    "lib32",
    "lib64",
    "bin",
    "sbin",
    "boot",
    "srv",
    "mnt",
    "media",
    "run",
    "proc",
    "sys",
    "snap",
    "nix",
}
SERVER_SETTINGS: dict[str, Any] = {
    "exec_default_timeout_seconds": 2.0,
    "exec_max_timeout_seconds": 3.0,
    "max_boxes_per_owner": 12,
    "max_boxes_total": 40,
    "file_transfer_cap_bytes": 1 << 20,
}


@dataclass
class Outcome:
    target: str
    tool: str
    shape: str  # "valid" or the mutation
    verdict: str  # ok | error | protocol | crash | hang | refused
    message: str
    arguments: str

    @property
    def crashed(self) -> bool:
        return self.verdict in ("crash", "hang")


@dataclass
class ToolStats:
    calls: int = 0
    ok: int = 0
    is_error: int = 0
    protocol: int = 0
    refused: int = 0
    crashes: int = 0
    messages: set[str] = field(default_factory=set)


@dataclass
class FuzzResult:
    calls: int
    stats: dict[str, ToolStats]
    crashes: list[Outcome]
    by_target: Counter[str]
    by_shape: Counter[str]
    tamed: int
    batches: int
    unresponsive: list[str]
    maintenance_failures: list[str]
    sentinel_problems: list[str]
    leftovers: dict[str, str]  # target -> what is left (empty string: nothing)
    seconds: float
    seed: int

    @property
    def passed(self) -> bool:
        return (
            not self.crashes
            and not self.unresponsive
            and not self.maintenance_failures
            and not self.sentinel_problems
            and not any(self.leftovers.values())
            and sum(s.calls for s in self.stats.values()) > 0
        )


_NORMALISE = [
    (re.compile(r"Your boxes: [^\n]*?\.(?= |$)"), "Your boxes: <list>."),
    (re.compile(r"\((recent|its snapshots): [^)\n]*\)"), r"(\1: <list>)"),
    (re.compile(r"existing boxes: [^;\n]*"), "existing boxes: <list>"),
    (re.compile(r"exec-[0-9a-f]{4,}"), "exec-<id>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<box>"),
    (re.compile(r"\(got .*\)$", re.M), "(got <value>)"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?"), "<n>"),
]


def normalise(message: str) -> str:
    """An error message with its variable parts replaced, to count distinct messages."""
    text = error_core(message)
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text[:400]


TAMED = {"copy_out": "box_path"}


def tame(tool: str, args: Any) -> tuple[Any, bool]:
    """Keep copy_out off the host image's big directories (see the module docstring)."""
    field_name = TAMED.get(tool)
    if field_name is None or not isinstance(args, dict):
        return args, False
    path = args.get(field_name)
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        return args, False
    top = posixpath.normpath(path).lstrip("/").split("/", 1)[0]
    if top in HEAVY_TOP:
        return {**args, field_name: "/tmp/fuzz"}, True
    return args, False


class _ErrorLog(logging.Handler):
    """ERROR records of the in-process server, with their tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.records.append(f"{record.name}: {text}"[:600])


class Target:
    """One server and its client(s); keeps the fixture and the pool of known values."""

    def __init__(
        self, name: str, clients: list[Client], host_root: Path, outside: list[str], secret: str
    ) -> None:
        self.name = name
        self.clients = clients
        self.pool = Pool(outside_paths=outside)
        self.host_root = host_root
        self.secret = secret
        self.turn = 0
        self.errors_seen = 0
        self.fixture: dict[str, str] = {}  # fixture box name -> id

    def new_errors(self) -> list[str]:  # overridden per kind of server
        return []

    async def call(self, tool: str, args: Any) -> tuple[str, str]:
        """(verdict, message) of one call."""
        self.turn += 1
        client = self.clients[self.turn % len(self.clients)]
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                result = await client.call_tool(tool, args)
        except TimeoutError:
            return "hang", f"no answer in {CALL_TIMEOUT:g} s"
        except MCPError as exc:
            message = str(exc) or f"code {exc.error.code}"
            if exc.error.code == INTERNAL_ERROR:
                return "crash", f"JSON-RPC internal error: {message}"
            return "protocol", message
        except (TypeError, ValueError) as exc:  # the client library would not send it
            return "refused", f"{type(exc).__name__}: {str(exc)[:200]}"
        message = text_of(result)
        reason = crash_reason(tool, message, [self.secret])
        logged = self.new_errors()
        if reason is None and logged:
            reason = f"server logged an error: {logged[0]}"
        if reason is not None:
            return "crash", f"{reason}: {message[:300]}"
        if result.is_error:
            if len(message.strip()) < 15:
                return "crash", f"unclear error message: {message!r}"
            return "error", message
        return "ok", message

    async def responsive(self) -> str | None:
        """None when the server still answers every client, else what failed."""
        for client in self.clients:
            try:
                with anyio.fail_after(15):
                    tools = await client.list_tools()
                    await ok(client, "runtime_info")
                    if client.mode == "legacy":
                        with warnings.catch_warnings():  # deprecated for 2026-07-28 only
                            warnings.simplefilter("ignore")
                            await client.send_ping()
            except Exception as exc:  # any failure here is the finding
                return f"{self.name}: {type(exc).__name__}: {str(exc)[:200]}"
            if not tools.tools:
                return f"{self.name}: list_tools returned no tools"
        return None

    async def maintain(self) -> None:
        """Remove the run's boxes, restore the fixture, refresh the pool."""
        client = self.clients[0]
        listed = (await ok(client, "box_list"))["boxes"]
        # The fixture's own boxes only: the run may have removed one and made its own
        # under the same name (with a broken working_dir, say).
        have = {b["name"]: b for b in listed if self.fixture.get(b["name"]) == b["id"]}
        for box in listed:
            if box["name"] not in have:
                await ok(client, "box_remove", {"box": box["id"], "force": True})
        for name in FIXTURE_BOXES:
            if name not in have:
                have[name] = (await ok(client, "box_create", {"name": name}))["box"]
                self.fixture[name] = have[name]["id"]
        stopped = have["stopped"]["id"]
        if have["stopped"].get("status") != "stopped":
            await ok(client, "box_stop", {"box": stopped})
        snaps = [
            s["name"] for s in (await ok(client, "snapshot_list", {"box": stopped}))["snapshots"]
        ]
        if "s" not in snaps:
            await ok(client, "snapshot_create", {"box": stopped, "name": "s"})
        done = await ok(client, "exec_run", {"box": "dev", "command": "echo done"})
        running = await ok(
            client, "exec_start", {"box": "dev", "command": "cat", "keep_stdin_open": True}
        )
        self.pool.boxes = [have["dev"]["id"], "dev", stopped, "stopped"]
        self.pool.executions = [running["execution_id"], done["execution_id"]]
        self.pool.snapshots = ["s", "t"]
        if not (self.host_root / "fixture.boxlite").exists():
            await ok(client, "box_export", {"box": stopped, "host_path": "fixture.boxlite"})

    async def remove_all(self) -> list[str]:
        """Remove every box through the tools; the ids that were left."""
        client = self.clients[0]
        listed = (await ok(client, "box_list"))["boxes"]
        for box in listed:
            await ok(client, "box_remove", {"box": box["id"], "force": True})
        return [b["id"] for b in (await ok(client, "box_list"))["boxes"]]


class MemoryTarget(Target):
    def __init__(self, log: _ErrorLog, *args: Any) -> None:
        super().__init__(*args)
        self.log = log

    def new_errors(self) -> list[str]:
        fresh = self.log.records[self.errors_seen :]
        self.errors_seen = len(self.log.records)
        return fresh


class StdioTarget(Target):
    def __init__(self, log_path: Path, *args: Any) -> None:
        super().__init__(*args)
        self.log_path = log_path
        self.offset = 0

    def new_errors(self) -> list[str]:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.offset)
                fresh = f.read().decode(errors="replace")
                self.offset = f.tell()
        except OSError:
            return []
        return [
            line for line in fresh.splitlines() if " ERROR " in line or line.startswith("Traceback")
        ]


def _tree(root: Path, skip: list[Path]) -> dict[str, str]:
    """path -> kind and content hash, for everything under ``root`` but ``skip``."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in [*dirnames, *filenames]:
            path = here / name
            if path.is_symlink():
                seen[str(path)] = "link:" + os.readlink(path)
            elif path.is_dir():
                seen[str(path)] = "dir"
            else:
                seen[str(path)] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


HOST_FILES = ("/etc/passwd", "/etc/hostname", "/etc/hosts")


def _host_files() -> dict[str, str]:
    return {
        p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in HOST_FILES if Path(p).is_file()
    }


def _prepare(root: Path) -> tuple[Path, list[str]]:
    """The allowed host root (with inputs and links out) and sentinels outside it."""
    allowed = root / "host"
    outside = root / "outside"
    (allowed / "indir" / "sub").mkdir(parents=True)
    (allowed / "in.txt").write_text("fuzz input\n")
    (allowed / "exports").mkdir()
    (allowed / "indir" / "sub" / "f.txt").write_text("nested\n")
    outside.mkdir()
    (outside / "sentinel.txt").write_text("must never change\n")
    (outside / "dir").mkdir()
    (outside / "dir" / "keep.bin").write_bytes(os.urandom(64))
    (allowed / "link-out").symlink_to(outside)
    (allowed / "link-file").symlink_to(outside / "sentinel.txt")
    outside_paths = [
        str(outside),
        str(outside / "sentinel.txt"),
        str(outside / "new.boxlite"),
        str(allowed / "link-out" / "x"),
        "link-out/x",
        "link-file",
        "link-out/sentinel.txt",
        "../outside/sentinel.txt",
        str(root / "x"),
    ]
    return allowed, outside_paths


@asynccontextmanager
async def _runtime(home: Path) -> AsyncIterator[Runtime]:
    from boxlite_mcp.runtime.bwrap import BwrapRuntime

    runtime = BwrapRuntime(home=home)
    try:
        yield runtime
    finally:
        await runtime.aclose()


def run_fuzz(
    calls: int = 10_000,
    stdio_share: float = 0.1,
    batch: int = 200,
    seed_value: int = 0,
    root: Path | None = None,
    max_huge: int = 17 << 20,
) -> FuzzResult:
    """Run the fuzz (synchronously: hypothesis drives, a portal runs the async calls)."""
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="boxlite-fuzz-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    allowed, outside_paths = _prepare(root)
    homes = [root / "home-memory", root / "home-stdio"]
    skip = [*homes, allowed, root / "logs"]
    before = _tree(root, skip)
    host_before = _host_files()
    secret = secrets.token_urlsafe(24)
    error_log = _ErrorLog()
    logging.getLogger().addHandler(error_log)
    stats: dict[str, ToolStats] = {}
    crashes: list[Outcome] = []
    by_target: Counter[str] = Counter()
    by_shape: Counter[str] = Counter()
    unresponsive: list[str] = []
    maintenance_failures: list[str] = []
    leftovers: dict[str, str] = {}
    counters = {"calls": 0, "tamed": 0, "batches": 0}
    try:
        with anyio.from_thread.start_blocking_portal() as portal, ExitStack() as stack:
            runtime = stack.enter_context(portal.wrap_async_context_manager(_runtime(homes[0])))
            server = build_server(runtime, Settings(allow_paths=[allowed], **SERVER_SETTINGS))
            memory_clients = [
                stack.enter_context(portal.wrap_async_context_manager(Client(server, mode=mode)))
                for mode in ("auto", "legacy")
            ]
            targets: list[Target] = [
                MemoryTarget(error_log, "memory", memory_clients, allowed, outside_paths, secret)
            ]
            stdio_log = root / "logs" / "stdio-server.log"
            stdio_log.parent.mkdir(exist_ok=True)
            if stdio_share > 0:
                errlog = stack.enter_context(stdio_log.open("a"))
                env = child_env(
                    **settings_env(**SERVER_SETTINGS), BOXLITE_MCP_AUTH_TOKENS=f"{secret}:fuzzer"
                )
                params = StdioServerParameters(
                    command=sys.executable,
                    args=[*stdio_server_args(homes[1]), "--allow-path", str(allowed)],
                    cwd=str(REPO),
                    env=env,
                )
                stdio = stack.enter_context(
                    portal.wrap_async_context_manager(
                        Client(stdio_client(params, errlog=errlog), mode="legacy")
                    )
                )
                targets.append(
                    StdioTarget(stdio_log, "stdio", [stdio], allowed, outside_paths, secret)
                )
            schemas = {
                t.name: t.input_schema for t in portal.call(memory_clients[0].list_tools).tools
            }
            names = sorted(schemas)
            for target in targets:
                portal.call(target.maintain)
                target.new_errors()

            def between_batches() -> None:
                counters["batches"] += 1
                for target in targets:
                    problem = portal.call(target.responsive)
                    if problem:
                        unresponsive.append(problem)
                    try:
                        portal.call(target.maintain)
                    except (ToolFailed, MCPError) as exc:
                        maintenance_failures.append(f"{target.name}: {exc}"[:400])
                    target.new_errors()

            def record(target: Target, tool: str, shape: str, args: Any) -> None:
                args, tamed = tame(tool, args)
                counters["tamed"] += tamed
                verdict, message = portal.call(target.call, tool, args)
                tally = stats.setdefault(tool, ToolStats())
                tally.calls += 1
                if verdict == "ok":
                    tally.ok += 1
                elif verdict == "error":
                    tally.is_error += 1
                    tally.messages.add(normalise(message))
                elif verdict == "protocol":
                    tally.protocol += 1
                    tally.messages.add(normalise(message))
                elif verdict == "refused":
                    tally.refused += 1
                else:
                    tally.crashes += 1
                    crashes.append(Outcome(target.name, tool, shape, verdict, message, _show(args)))
                by_target[target.name] += 1
                by_shape[shape] += 1
                counters["calls"] += 1
                if counters["calls"] % batch == 0:
                    between_batches()

            def chunk(target: Target, tool: str, count: int, index: int) -> None:
                """``count`` calls of one tool: one hypothesis run, valid-shaped or broken
                (in this chunk's way: the ways take turns, chunk by chunk)."""
                schema = schemas[tool]
                mutation = MUTATIONS[index % len(MUTATIONS)]

                @settings(
                    max_examples=count,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @seed(seed_value * 1_000_003 + index)
                @given(st.data())
                def one_call(data: st.DataObject) -> None:
                    if data.draw(st.booleans(), label="valid-shaped"):
                        shape, args = "valid", data.draw(arguments(schema, pool=target.pool))
                    else:
                        shape, args = data.draw(hostile(schema, target.pool, max_huge, mutation))
                    record(target, tool, shape, args)

                one_call()

            # Rounds over every tool, CHUNK calls each, so that tools interleave (box
            # limits, fixture state) and each gets its share; every n-th chunk over stdio.
            for index, (tool, count) in enumerate(schedule(names, calls)):
                use_stdio = len(targets) > 1 and int((index + 1) * stdio_share) > int(
                    index * stdio_share
                )
                chunk(targets[1] if use_stdio else targets[0], tool, count, index)
            between_batches()
            for target in targets:
                try:
                    left = portal.call(target.remove_all)
                except (ToolFailed, MCPError) as exc:
                    left = [f"cleanup failed: {exc}"]
                leftovers[target.name] = f"box_list still shows {left}" if left else ""
                problem = target.new_errors()
                if problem:
                    crashes.append(Outcome(target.name, "(cleanup)", "-", "crash", problem[0], "-"))
            listed = portal.call(runtime.list)
            if listed:
                leftovers["memory"] += f" runtime lists {[i.id for i in listed]}"
        # Both servers have stopped now: the stdio one on EOF, the in-memory one's runtime closed.
        for name, home in zip(("memory", "stdio"), homes, strict=True):
            if not home.exists():
                continue
            seen = _settled(home)
            if not seen.clean or seen.servers:
                leftovers[name] = (leftovers.get(name, "") + f" host: {seen.summary()}").strip()
            listed_ids = portal_free_runtime_boxes(home)
            if listed_ids:
                leftovers[name] = leftovers.get(name, "") + f" runtime on home: {listed_ids}"
    finally:
        logging.getLogger().removeHandler(error_log)
    after = _tree(root, skip)
    sentinel_problems = [
        f"{path}: {before.get(path, 'absent')} -> {after.get(path, 'absent')}"
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    ]
    host_after = _host_files()
    sentinel_problems += [
        f"{p} changed" for p in host_before if host_after.get(p) != host_before[p]
    ]
    return FuzzResult(
        counters["calls"],
        stats,
        crashes,
        by_target,
        by_shape,
        counters["tamed"],
        counters["batches"],
        unresponsive,
        maintenance_failures,
        sentinel_problems,
        leftovers,
        time.monotonic() - began,
        seed_value,
    )


CHUNK = 4


def schedule(names: list[str], calls: int) -> list[tuple[str, int]]:
    """(tool, calls) chunks: rounds over ``names``, ``CHUNK`` calls each, ``calls`` in all."""
    chunks: list[tuple[str, int]] = []
    left = calls
    while left > 0:
        for name in names:
            count = min(CHUNK, left)
            if count <= 0:
                break
            chunks.append((name, count))
            left -= count
    return chunks


def _settled(home: Path, patience: float = 20.0) -> host.Leftovers:
    deadline = time.monotonic() + patience
    while True:
        seen = host.scan([home])
        if (seen.clean and not seen.servers) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def portal_free_runtime_boxes(home: Path) -> list[str]:
    return anyio.run(host.runtime_boxes, home)


def _show(args: Any) -> str:
    text = json.dumps(args, ensure_ascii=True, default=repr)
    return text if len(text) <= 400 else text[:300] + f"... ({len(text)} chars)"


def iter_rows(result: FuzzResult) -> Iterator[tuple[object, ...]]:
    for tool in sorted(result.stats):
        s = result.stats[tool]
        yield (
            tool,
            s.calls,
            s.ok,
            s.is_error,
            s.protocol,
            f"**{s.crashes}**" if s.crashes else "0",
            len(s.messages),
        )


def report(result: FuzzResult, command: str) -> str:
    total = ToolStats()
    for s in result.stats.values():
        total.calls += s.calls
        total.ok += s.ok
        total.is_error += s.is_error
        total.protocol += s.protocol
        total.refused += s.refused
        total.crashes += s.crashes
        total.messages |= s.messages
    rows = [
        *iter_rows(result),
        (
            "**total**",
            total.calls,
            total.ok,
            total.is_error,
            total.protocol,
            f"**{total.crashes}**" if total.crashes else "0",
            len(total.messages),
        ),
    ]
    shapes = ", ".join(f"{k} {v}" for k, v in sorted(result.by_shape.items()))
    lines = [
        f"### Tool-call fuzz (`{command}`, {result.seconds:.0f} s, seed {result.seed})",
        "",
        f"- {result.calls} calls: "
        + ", ".join(f"{v} {k}" for k, v in sorted(result.by_target.items()))
        + " (in-memory calls alternate between the 2026-07-28 and handshake-era clients; "
        "stdio is a real `python -m boxlite_mcp` subprocess)",
        f"- shapes: {shapes}",
        f"- {result.batches} batches: after each, the server answered list_tools/runtime_info"
        f"/ping ({len(result.unresponsive)} failures) and the fixture was restored "
        f"({len(result.maintenance_failures)} failures)",
        f"- copy_out of the host image's big directories replaced by /tmp/fuzz: {result.tamed}",
        "- refused: arguments the client library would not send (not counted as calls to the "
        f"server): {sum(s.refused for s in result.stats.values())}",
        "",
        render(
            (
                "tool",
                "calls",
                "ok",
                "isError",
                "protocol error",
                "crashes",
                "distinct error messages",
            ),
            rows,
        ),
        "",
        "Outside the allowed root: "
        + (
            "nothing changed"
            if not result.sentinel_problems
            else f"**{len(result.sentinel_problems)} changes**"
        ),
        "Boxes left at the end: "
        + ("; ".join(f"{k}: {v or 'none'}" for k, v in sorted(result.leftovers.items()))),
    ]
    if result.crashes:
        distinct = {(c.target, c.tool, c.arguments): c for c in result.crashes}
        lines += ["", f"Crashes ({len(result.crashes)}; {len(distinct)} distinct calls):"]
        for c in list(distinct.values())[:30]:
            lines.append(
                f"- [{c.target}] {c.tool} ({c.shape}) {c.arguments[:200]} → "
                f"{c.verdict}: {c.message[:300]}"
            )
    for title, items in (
        ("Unresponsive", result.unresponsive),
        ("Fixture restore failures", result.maintenance_failures),
        ("Outside the allowed root", result.sentinel_problems),
    ):
        if items:
            lines += ["", f"{title}:", *[f"- {i[:300]}" for i in items[:20]]]
    lines += ["", "PASSED" if result.passed else "FAILED"]
    return "\n".join(lines)
