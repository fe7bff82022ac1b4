"""The isolation probe: owner B tries everything on owner A's boxes, executions, files, snapshots.

Two scenarios, each against its own ``python -m boxlite_mcp`` over streamable HTTP
(bwrap runtime, its own home, one allowed host directory):

- ``bearer``: bearer auth with two tokens (owners ``alice`` = A and ``bob`` = B, from a
  tokens file as an operator would configure them); B attacks from a handshake-era
  session and from a 2026-07-28 client;
- ``sessions``: no auth; A and B are two handshake-era sessions (``mcp-session-id``).

A first makes things worth stealing: a running box with a secret file and a running
execution (stdin open), a finished execution with secret output, a stopped box with
a snapshot, and, in the allowed host directory, a copied-out file and an exported
archive. B then attacks, each attempt recorded with whether it *succeeded* (every
success is a breach):

- ``box ids``/``box names``/``runtime names``: every tool that takes a box, given A's
  real ids, A's names, and A's reserved runtime names (``mcp.<owner-hash>.<e|p>.<name>``,
  read from the server's home: the worst case of a leak); B's own box named like A's
  must not be A's;
- ``executions``: ``exec_read``/``exec_write``/``exec_signal``/``exec_kill`` on A's ids;
- ``snapshots``, ``clone & export``: on A's stopped box, its snapshot by name;
- ``resources``: ``boxlite://boxes/{A's id|name}``, its files, A's execution outputs;
- ``listings``: ``box_list``, ``boxlite://boxes``, ``runtime_info`` must not name
  anything of A's;
- ``error oracles``: B's error for A's real id, name or execution id must be
  byte-identical to B's error for a random one of the same shape;
- ``inside a box``: from B's own box, with the real paths (a worst-case leak) that
  the probe locates on the host and checks there first: the server's home and the
  tokens file; A's disk images (``boxes/<id>/disk.img``: since issue 10 a box's
  writable layer lives in one, mounted detached, so the old ``upper/`` paths under the
  home no longer exist), the loop devices holding them (opened, and made with
  ``mknod``), the server's fds of A's detached mounts (``/proc/<server>/fd/N/upper``),
  and A's sandbox processes (``/proc/<pid>/root``, ``/proc/<pid>/fd``, ``nsenter``
  into their mount namespace);
- ``host roots``: what A left in the allowed host directory (copy_out, box_export),
  read and overwritten through B's own tools.

Finally A checks that nothing of its own changed (``A unharmed``).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents

from tools.soaklib.calls import error_core, ok, text_of
from tools.soaklib.server import McpHttpServer
from tools.soaklib.table import render

A_SECRET = "A-SECRET-" + "7f3a9c"
A_OUTPUT = "A-OUTPUT-" + "51be02"
A_SNAP_SECRET = "A-SNAP-SECRET-" + "c0ffee"

KINDS = (
    "box ids",
    "box names",
    "runtime names",
    "executions",
    "snapshots",
    "clone & export",
    "resources",
    "listings",
    "error oracles",
    "inside a box",
    "box network",
    "host roots",
    "A unharmed",
)


@dataclass
class Attempt:
    kind: str
    attack: str
    success: bool
    detail: str


@dataclass
class Whereabouts:
    """Where A's box files really are on the host, each checked from the host first.

    B's attacks aim at these; one that B cannot reach proves something only if it is
    where A's secret is, so the probe reads A's secret through each from the host.
    """

    images: list[str] = field(default_factory=list)  # boxes/<id>/disk.img
    loops: list[str] = field(default_factory=list)  # /dev/loopN holding an image
    server_fds: list[str] = field(default_factory=list)  # /proc/<server>/fd/N (A's mounts)
    sandbox_pids: list[int] = field(default_factory=list)  # A's box processes
    checked: dict[str, bool] = field(default_factory=dict)  # target kind -> confirmed on host


@dataclass
class AState:
    """What A made, and the names of it B will try."""

    running: str  # box id: running, /root/secret, an execution running in it
    stopped: str  # box id: stopped, with snapshot "snap1"
    running_name: str = "secret-box"
    stopped_name: str = "snap-box"
    runtime_names: list[str] = field(default_factory=list)
    exec_running: str = ""
    exec_done: str = ""
    home: str = ""
    subject: str = ""
    token: str = ""
    files: dict[str, str] = field(default_factory=dict)  # A's host files: name -> abs path
    exposed_port: int = 0  # the host port of A's service (box_expose of A's running box)
    server_port: int = 0  # the MCP server's own HTTP port
    where: Whereabouts | None = None  # where A's files really are, located on the host

    def secrets(self) -> list[str]:
        """Everything of A's that must never reach B unless B sent it itself."""
        return [
            A_SECRET,
            A_OUTPUT,
            A_SNAP_SECRET,
            self.running,
            self.stopped,
            self.exec_running,
            self.exec_done,
            *self.runtime_names,
            self.token,
        ]


@dataclass
class ScenarioResult:
    name: str
    attackers: list[str]
    attempts: list[Attempt]
    where: Whereabouts | None = None

    def successes(self, kind: str | None = None) -> list[Attempt]:
        return [a for a in self.attempts if a.success and (kind is None or a.kind == kind)]


@dataclass
class ProbeResult:
    scenarios: list[ScenarioResult]
    seconds: float

    @property
    def successes(self) -> list[Attempt]:
        return [a for s in self.scenarios for a in s.successes()]


def _client(url: str, token: str | None, mode: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(url, http_client=http), mode=mode)


#: Tools that take a box, with arguments that would make the call valid otherwise.
BOX_TOOLS: dict[str, dict[str, Any]] = {
    "box_info": {},
    "box_metrics": {},
    "box_start": {},
    "box_stop": {},
    "box_clone": {"name": "stolen"},
    "box_export": {"host_path": "b-export.boxlite"},
    "exec_run": {"command": "cat /root/secret"},
    "exec_start": {"command": "cat /root/secret"},
    "file_read": {"path": "/root/secret"},
    "file_write": {"path": "/root/pwned", "content": "B was here"},
    "copy_in": {"host_path": "b-in.txt", "box_path": "/root/pwned"},
    "copy_out": {"box_path": "/root/secret", "host_path": "b-out.txt"},
    "snapshot_create": {"name": "b-snap"},
    "snapshot_list": {},
    "snapshot_restore": {"name": "snap1"},
    "snapshot_remove": {"name": "snap1"},
    "box_remove": {},
}
EXEC_TOOLS: dict[str, dict[str, Any]] = {
    "exec_read": {"wait_seconds": 0},
    "exec_write": {"text": "B was here\n"},
    "exec_signal": {"signal": "TERM"},
    "exec_kill": {},
}


class Attacker:
    """B: calls that must all fail, each recorded as an attempt."""

    def __init__(self, client: Client, label: str, a: AState, attempts: list[Attempt]) -> None:
        self.client = client
        self.label = label
        self.a = a
        self.attempts = attempts

    def _leaks(self, text: str, sent: str) -> list[str]:
        return [s for s in self.a.secrets() if s and s in text and s not in sent]

    def record(self, kind: str, attack: str, success: bool, detail: str) -> None:
        self.attempts.append(Attempt(kind, f"{self.label}: {attack}", success, detail[:300]))

    async def tool(self, kind: str, tool: str, arguments: dict[str, Any]) -> str:
        """Call a tool that must fail (and leak nothing); its message."""
        sent = json.dumps(arguments)
        try:
            result = await self.client.call_tool(tool, arguments)
        except MCPError as exc:
            message = str(exc)
            self.record(kind, f"{tool} {sent}", bool(self._leaks(message, sent)), message)
            return message
        message = text_of(result)
        leaks = self._leaks(message + json.dumps(result.structured_content or {}), sent)
        success = not result.is_error or bool(leaks)
        self.record(
            kind, f"{tool} {sent}", success, f"leaked {leaks}: {message}" if leaks else message
        )
        return message

    async def resource(self, kind: str, uri: str) -> str:
        """Read a resource that must not be readable (and leak nothing); the error."""
        try:
            read = await self.client.read_resource(uri)
        except MCPError as exc:
            message = str(exc)
            self.record(kind, f"read {uri}", bool(self._leaks(message, uri)), message)
            return message
        body = " ".join(c.text for c in read.contents if isinstance(c, TextResourceContents))
        self.record(kind, f"read {uri}", True, f"readable: {body[:200]}")
        return body


async def _setup_a(a: Client, home: Path, subject: str, token: str) -> AState:
    running = (await ok(a, "box_create", {"name": "secret-box"}))["box"]["id"]
    await ok(a, "exec_run", {"box": running, "command": f"echo {A_SECRET} > /root/secret"})
    live = await ok(
        a,
        "exec_start",
        {
            "box": running,
            "command": "cat; sleep 300",
            "keep_stdin_open": True,
            "timeout_seconds": 600,
        },
    )
    done = await ok(a, "exec_run", {"box": running, "command": f"echo {A_OUTPUT}"})
    await ok(
        a,
        "exec_start",
        {
            "box": running,
            "timeout_seconds": 600,
            "command": f"mkdir -p /srv/www && echo {A_SECRET} > /srv/www/index.html && "
            "cd /srv/www && exec python3 -m http.server 8088 "
            "--bind 127.0.0.1",
        },
    )
    exposed = await _expose_when_listening(a, running, 8088)
    stopped = (await ok(a, "box_create", {"name": "snap-box"}))["box"]["id"]
    await ok(a, "exec_run", {"box": stopped, "command": f"echo {A_SNAP_SECRET} > /root/snap"})
    await ok(a, "box_stop", {"box": stopped})
    await ok(a, "snapshot_create", {"box": stopped, "name": "snap1"})
    files = {
        "a-secret.txt": (
            await ok(
                a,
                "copy_out",
                {"box": running, "box_path": "/root/secret", "host_path": "a-secret.txt"},
            )
        )["destination"]
    }
    for name in ("a-snap.boxlite", "a-victim.boxlite"):
        files[name] = (await ok(a, "box_export", {"box": stopped, "host_path": name}))[
            "archive_path"
        ]
    names = []
    for box_id in (running, stopped):
        record = json.loads((home / "boxes" / box_id / "box.json").read_text())
        names.append(str(record["name"]))
    return AState(
        running=running,
        stopped=stopped,
        runtime_names=names,
        exec_running=live["execution_id"],
        exec_done=done["execution_id"],
        home=str(await anyio.Path(home).resolve()),
        subject=subject,
        token=token,
        files=files,
        exposed_port=exposed,
    )


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


def locate(home: str, boxes: list[str], server_pid: int) -> Whereabouts:
    """Find A's disk images, loop devices, server fds and sandbox processes on the host
    (the probe runs as root there). Server fds and sandbox processes are confirmed by
    reading A's secret through them; loop devices by their backing file being A's
    image; images by being those files (their blocks may still be in the page cache)."""
    where = Whereabouts()
    images = [f"{home}/boxes/{box}/disk.img" for box in boxes]
    where.images = [i for i in images if os.path.isfile(i)]
    real = {os.path.realpath(i) for i in where.images}
    for backing in sorted(Path("/sys/block").glob("loop*/loop/backing_file")):
        if _read(str(backing)).strip() in real:
            where.loops.append(f"/dev/{backing.parent.parent.name}")
    fd_dir = f"/proc/{server_pid}/fd"
    for fd in sorted(os.listdir(fd_dir), key=int):
        layer = f"{fd_dir}/{fd}/upper/root"
        if A_SECRET in _read(f"{layer}/secret") or A_SNAP_SECRET in _read(f"{layer}/snap"):
            where.server_fds.append(f"{fd_dir}/{fd}")
    for entry in os.listdir("/proc"):
        if entry.isdigit() and A_SECRET in _read(f"/proc/{entry}/root/root/secret"):
            where.sandbox_pids.append(int(entry))
    where.checked = {
        "disk images": bool(where.images) and len(real) == len(boxes),
        "loop devices": len(where.loops) == len(boxes),  # the stopped box's stays mounted
        "server fds": len(where.server_fds) >= len(boxes),
        "sandbox processes": bool(where.sandbox_pids),
    }
    return where


async def _expose_when_listening(a: Client, box: str, port: int) -> int:
    """box_expose once the box's service listens: the host port A's URL names."""
    await ok(
        a,
        "exec_run",
        {
            "box": box,
            "command": (
                'for i in $(seq 100); do python3 -c "import socket; '
                f"socket.create_connection(('127.0.0.1', {port}), 1)\" 2>/dev/null && exit 0; "
                "sleep 0.1; done; exit 1"
            ),
        },
    )
    url = str((await ok(a, "box_expose", {"box": box, "port": port}))["url"])
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _random_like(value: str) -> str:
    """A random reference of the same shape (hex stays hex, the same length)."""
    if value.startswith("exec-"):
        return "exec-" + secrets.token_hex(8)
    if value.startswith("mcp."):
        head, _, name = value.rpartition(".")
        return f"{head}.{name[:-4]}{secrets.token_hex(2)}"
    if all(c in "0123456789abcdef" for c in value):
        return secrets.token_hex(len(value) // 2)
    return "x" + secrets.token_hex(max(1, (len(value) - 1) // 2))[: len(value) - 1]


async def _attack(b: Attacker, tokens_file: Path | None) -> None:
    a = b.a
    # Box references: ids, names, reserved runtime names.
    refs = {
        "box ids": [a.running, a.stopped],
        "box names": [a.running_name, a.stopped_name],
        "runtime names": a.runtime_names,
    }
    for kind, values in refs.items():
        for ref in values:
            for tool, extra in BOX_TOOLS.items():
                await b.tool(kind, tool, {"box": ref, **extra})
    # B's own box under A's name is B's alone.
    mine = await b.client.call_tool("box_create", {"name": a.running_name})
    if mine.is_error:
        b.record("box names", "box_create under A's name", False, text_of(mine))
    else:
        seen = await b.client.call_tool(
            "exec_run", {"box": a.running_name, "command": "cat /root/secret 2>&1; ls /root"}
        )
        text = text_of(seen)
        b.record(
            "box names", "B's own box named like A's shows A's files", A_SECRET in text, text[:200]
        )
        await b.client.call_tool("box_remove", {"box": a.running_name})
    # Executions.
    for execution in (a.exec_running, a.exec_done):
        for tool, extra in EXEC_TOOLS.items():
            await b.tool("executions", tool, {"execution_id": execution, **extra})
    # Snapshots, clone and export, by id and name.
    for ref in (a.stopped, a.stopped_name):
        for tool in ("snapshot_list", "snapshot_restore", "snapshot_remove", "snapshot_create"):
            await b.tool("snapshots", tool, {"box": ref, **BOX_TOOLS[tool]})
        await b.tool("clone & export", "box_clone", {"box": ref, "name": "stolen"})
        await b.tool(
            "clone & export",
            "box_export",
            {"box": ref, "host_path": "stolen.boxlite", "overwrite": True},
        )
    # Resources.
    for ref in (a.running, a.running_name, *a.runtime_names):
        await b.resource("resources", f"boxlite://boxes/{ref}")
        await b.resource("resources", f"boxlite://boxes/{ref}/files/root/secret")
        await b.resource("resources", f"boxlite://boxes/{ref}/files/etc/hostname")
    for execution in (a.exec_running, a.exec_done):
        await b.resource("resources", f"boxlite://executions/{execution}/output")
    await _listings(b)
    await _oracles(b)
    await _inside(b, tokens_file)
    await _network(b)
    await _host_roots(b)


async def _listings(b: Attacker) -> None:
    a = b.a
    listed = await b.client.call_tool("box_list", {})
    dump = text_of(listed) + json.dumps(listed.structured_content or {})
    shown = [s for s in (a.running, a.stopped, *a.runtime_names) if s in dump]
    b.record("listings", "box_list shows A's boxes", bool(shown), f"shown: {shown}")
    resource = await b.client.read_resource("boxlite://boxes")
    body = " ".join(c.text for c in resource.contents if isinstance(c, TextResourceContents))
    shown = [s for s in (a.running, a.stopped, *a.runtime_names) if s in body]
    b.record("listings", "boxlite://boxes shows A's boxes", bool(shown), f"shown: {shown}")
    info = await b.client.call_tool("runtime_info", {})
    dump = text_of(info) + json.dumps(info.structured_content or {})
    hashes = [name.split(".")[1] for name in a.runtime_names]
    named = [*a.secrets(), *hashes, *([a.subject] if a.subject else [])]
    leaked = [s for s in named if s and s in dump]
    b.record("listings", "runtime_info names anything of A's", bool(leaked), f"named: {leaked}")


async def _oracles(b: Attacker) -> None:
    """B's error for A's real reference vs a random one: byte-identical or it is an oracle."""
    a = b.a

    async def answer(tool: str, arguments: dict[str, Any]) -> str:
        """What B learns from a call: the error text, or that it worked."""
        if tool == "read":
            try:
                await b.client.read_resource(str(arguments["uri"]))
            except MCPError as exc:
                return f"MCPError {exc.error.code}: {exc}"
            return "readable"
        try:
            result = await b.client.call_tool(tool, arguments)
        except MCPError as exc:
            return f"MCPError {exc.error.code}: {exc}"
        return ("ok " if not result.is_error else "") + error_core(text_of(result))

    async def compare(
        tool: str, real: dict[str, Any], fake: dict[str, Any], asked: tuple[str, str]
    ) -> None:
        """``asked``: the real and the random reference; an error repeats the one it was
        given, which tells B nothing, so each is read as the same placeholder."""
        mine = (await answer(tool, real)).replace(asked[0], "<ref>")
        other = (await answer(tool, fake)).replace(asked[1], "<ref>")
        label = f"{tool} {json.dumps(real)} vs {json.dumps(fake)}"
        b.record(
            "error oracles",
            label,
            mine != other,
            "identical" if mine == other else f"real: {mine[:120]} | random: {other[:120]}",
        )

    for ref in (a.running, a.stopped, a.running_name, *a.runtime_names):
        fake = _random_like(ref)
        for tool, extra in BOX_TOOLS.items():
            if tool in ("box_remove", "box_stop", "snapshot_remove", "snapshot_restore"):
                continue  # destructive ones were already refused above; the rest suffice
            await compare(tool, {"box": ref, **extra}, {"box": fake, **extra}, (ref, fake))
        for suffix in ("", "/files/etc/hostname"):
            await compare(
                "read",
                {"uri": f"boxlite://boxes/{ref}{suffix}"},
                {"uri": f"boxlite://boxes/{fake}{suffix}"},
                (ref, fake),
            )
    for execution in (a.exec_running, a.exec_done):
        fake = _random_like(execution)
        for tool, extra in EXEC_TOOLS.items():
            await compare(
                tool,
                {"execution_id": execution, **extra},
                {"execution_id": fake, **extra},
                (execution, fake),
            )
        await compare(
            "read",
            {"uri": f"boxlite://executions/{execution}/output"},
            {"uri": f"boxlite://executions/{fake}/output"},
            (execution, fake),
        )


async def _inside(b: Attacker, tokens_file: Path | None) -> None:
    """From B's own box: A's box files wherever they are, and the tokens file.

    B is given the real paths (the default home is well known; pids, fds and loop
    numbers are small and guessable; worst case: leaked), as located on the host. A
    disk image or loop device B can open at all is a breach (``OPENED`` in the
    output), even before it finds A's secret in it.
    """
    a = b.a
    created = await b.client.call_tool("box_create", {"name": "b-box"})
    if created.is_error:
        b.record("inside a box", "create B's own box", False, text_of(created))
        return
    home = a.home
    where = a.where or Whereabouts()
    secret_needles = [A_SECRET, A_SNAP_SECRET]
    probes: dict[str, tuple[str, list[str]]] = {
        "list the server's home (A's box ids)": (f"ls {home}/boxes 2>&1", [a.running, a.stopped]),
        "read A's file through the server's home (pre-disk layout)": (
            f"cat {home}/boxes/{a.running}/upper/root/secret 2>&1",
            [A_SECRET],
        ),
        "read A's stopped box and snapshot through the server's home (pre-disk layout)": (
            f"cat {home}/boxes/{a.stopped}/upper/root/snap "
            f"{home}/boxes/{a.stopped}/snapshots/*/upper/root/snap 2>&1",
            [A_SNAP_SECRET],
        ),
    }
    for image in where.images:
        probes[f"open A's disk image {image}"] = (
            f"head -c 1 {image} >/dev/null 2>&1 && echo OPENED; "
            f"debugfs -R 'cat /root/secret' {image} 2>&1; "
            f"debugfs -R 'cat /root/snap' {image} 2>&1",
            ["OPENED", *secret_needles],
        )
    for loop in where.loops:
        number = loop.removeprefix("/dev/loop")
        probes[f"open A's loop device {loop}"] = (
            f"head -c 1 {loop} >/dev/null 2>&1 && echo OPENED; "
            f"debugfs -R 'cat /root/secret' {loop} 2>&1",
            ["OPENED", *secret_needles],
        )
        probes[f"mknod A's loop device {loop} (b 7 {number}) and open it"] = (
            f"mknod /root/loop b 7 {number} 2>&1 && head -c 1 /root/loop >/dev/null 2>&1 "
            "&& echo OPENED; debugfs -R 'cat /root/secret' /root/loop 2>&1; rm -f /root/loop",
            ["OPENED", *secret_needles],
        )
    for fd in where.server_fds:
        probes[f"read A's detached mount through the server's {fd}"] = (
            f"cat {fd}/upper/root/secret {fd}/upper/root/snap 2>&1; ls {fd}/ 2>&1",
            secret_needles,
        )
    for pid in where.sandbox_pids:
        probes[f"read A's files through /proc/{pid}/root and /proc/{pid}/cwd"] = (
            f"cat /proc/{pid}/root/root/secret /proc/{pid}/cwd/root/secret 2>&1",
            [A_SECRET],
        )
        probes[f"read A's files through the fds of A's sandbox process {pid}"] = (
            f"ls -l /proc/{pid}/fd/ 2>&1; for f in /proc/{pid}/fd/*; do "
            "cat $f/root/secret $f/upper/root/secret 2>&1 | head -c 200; done",
            [A_SECRET],
        )
        probes[f"enter A's mount namespace (/proc/{pid}/ns/mnt) with nsenter"] = (
            f"nsenter --mount=/proc/{pid}/ns/mnt cat /root/secret 2>&1; "
            f"nsenter --target {pid} --mount --pid cat /root/secret 2>&1",
            [A_SECRET],
        )
    probes["search every visible process root and fd for A's secret"] = (
        "cat /proc/[0-9]*/root/root/secret /proc/[0-9]*/fd/*/upper/root/secret "
        "/proc/[0-9]*/fd/*/root/secret 2>/dev/null | head -c 300; echo",
        secret_needles,
    )
    if tokens_file is not None:
        probes["read the bearer tokens file"] = (f"cat {tokens_file} 2>&1", [a.token])
    for attack, (command, needles) in probes.items():
        ran = await b.client.call_tool("exec_run", {"box": "b-box", "command": command})
        out = str((ran.structured_content or {}).get("stdout", "")) if not ran.is_error else ""
        found = [n for n in needles if n and n in out]
        shown = out[:150].replace("\n", " | ")
        b.record(
            "inside a box",
            attack,
            bool(found),
            f"found {len(found)} of A's secrets or OPENED" if found else shown,
        )
    await b.client.call_tool("box_remove", {"box": "b-box"})


async def _network(b: Attacker) -> None:
    """From B's own box with network (the operator lists the host's loopback on every
    port, the widest setting): A's exposed service and the server's own port must stay
    closed, through the proxy and around it; box_expose of A's box must be refused."""
    a = b.a
    await b.tool("box network", "box_expose", {"box": a.running, "port": 8088})
    created = await b.client.call_tool("box_create", {"name": "b-net", "network": True})
    if created.is_error:
        b.record("box network", "create B's box with network", False, text_of(created))
        return
    targets = {"A's exposed service": a.exposed_port, "the server's own port": a.server_port}
    for what, port in targets.items():
        for how, url in (
            ("through the proxy", f"http://host.boxlite.internal:{port}/"),
            ("by loopback address", f"http://127.0.0.1:{port}/"),
        ):
            command = f"curl -s -m 10 -w '\\n%{{http_code}}' {url} 2>&1"
            ran = await b.client.call_tool("exec_run", {"box": "b-net", "command": command})
            out = str((ran.structured_content or {}).get("stdout", "")) if not ran.is_error else ""
            code = out.rsplit("\n", 1)[-1].strip()
            reached = A_SECRET in out or code not in ("403", "000", "")
            b.record("box network", f"reach {what} {how}", reached, out[-150:])
        command = f"curl -s -m 5 --noproxy '*' http://127.0.0.1:{port}/ 2>&1; echo \" $?\""
        ran = await b.client.call_tool("exec_run", {"box": "b-net", "command": command})
        out = str((ran.structured_content or {}).get("stdout", "")) if not ran.is_error else ""
        b.record(
            "box network",
            f"reach {what} around the proxy",
            A_SECRET in out or not out.strip().endswith(("7", "28")),
            out[-150:],
        )
    await b.client.call_tool("box_remove", {"box": "b-net"})


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


async def _host_roots(b: Attacker) -> None:
    """What A put in the allowed host directory, through B's own tools.

    B names each of A's files three ways: as A did (relative to the root), by the
    absolute path A's results showed (a leak), and relative to B's own root.
    """
    a = b.a
    created = await b.client.call_tool("box_create", {"name": "b-host"})
    if created.is_error:
        b.record("host roots", "create B's own box", False, text_of(created))
        return
    info = await ok(b.client, "runtime_info")
    own_root = Path(info["policy"]["allowed_host_paths"][0])

    def names(name: str) -> list[str]:
        path = a.files[name]
        return list(dict.fromkeys([name, path, os.path.relpath(path, own_root)]))

    for ref in names("a-secret.txt"):
        copied = await b.client.call_tool(
            "copy_in", {"box": "b-host", "host_path": ref, "box_path": "/root/got"}
        )
        read = await b.client.call_tool("file_read", {"box": "b-host", "path": "/root/got"})
        got = str((read.structured_content or {}).get("content", ""))
        b.record(
            "host roots",
            f"copy_in A's copied-out file as {ref!r}, then file_read it",
            not copied.is_error and A_SECRET in got,
            text_of(copied)[:150],
        )
    for ref in names("a-snap.boxlite"):
        imported = await b.client.call_tool("box_import", {"host_path": ref, "name": "b-imported"})
        shown = ""
        if not imported.is_error:
            ran = await b.client.call_tool(
                "exec_run", {"box": "b-imported", "command": "cat /root/snap"}
            )
            shown = str((ran.structured_content or {}).get("stdout", ""))
            await b.client.call_tool("box_remove", {"box": "b-imported"})
        b.record(
            "host roots",
            f"box_import A's exported archive as {ref!r}",
            A_SNAP_SECRET in shown,
            text_of(imported)[:150] if imported.is_error else f"box has: {shown[:80]}",
        )
    victim = a.files["a-victim.boxlite"]
    await b.client.call_tool("box_stop", {"box": "b-host"})
    for ref in names("a-victim.boxlite"):
        before = _mtime(victim)
        overwrite = await b.client.call_tool(
            "box_export", {"box": "b-host", "host_path": ref, "overwrite": True}
        )
        changed = _mtime(victim) != before
        b.record(
            "host roots",
            f"overwrite A's exported archive as {ref!r} with box_export",
            changed,
            text_of(overwrite)[:150],
        )
    await b.client.call_tool("box_remove", {"box": "b-host"})


async def _unharmed(a_client: Client, a: AState, attempts: list[Attempt]) -> None:
    """A's things are as A left them (a breach may have been silent)."""

    def record(attack: str, harmed: bool, detail: str) -> None:
        attempts.append(Attempt("A unharmed", attack, harmed, detail[:300]))

    listed = {x["id"]: x for x in (await ok(a_client, "box_list"))["boxes"]}
    record("A still has both boxes", set(listed) != {a.running, a.stopped}, f"{sorted(listed)}")
    if a.running in listed:
        record(
            "running box still running",
            listed[a.running]["status"] != "running",
            listed[a.running]["status"],
        )
        seen = await ok(
            a_client,
            "exec_run",
            {"box": a.running, "command": "cat /root/secret; ls /root/pwned 2>/dev/null"},
        )
        record(
            "secret intact, nothing planted", seen["stdout"].split() != [A_SECRET], seen["stdout"]
        )
    if a.stopped in listed:
        record(
            "stopped box still stopped",
            listed[a.stopped]["status"] != "stopped",
            listed[a.stopped]["status"],
        )
        snaps = await ok(a_client, "snapshot_list", {"box": a.stopped})
        record(
            "snapshot intact",
            [s["name"] for s in snaps["snapshots"]] != ["snap1"],
            f"{snaps['snapshots']}",
        )
    live = await a_client.call_tool("exec_read", {"execution_id": a.exec_running})
    state = live.structured_content or {}
    record(
        "running execution untouched (running, no input from B)",
        bool(live.is_error or not state.get("running") or state.get("stdout")),
        text_of(live)[:200],
    )


@asynccontextmanager
async def _server(root: Path, name: str, args: list[str]) -> AsyncIterator[McpHttpServer]:
    server = McpHttpServer(root / name / "home", root / name / "server.log", args=args)
    (root / name).mkdir(parents=True, exist_ok=True)
    async with server:
        yield server


async def _scenario(name: str, root: Path, use_auth: bool) -> ScenarioResult:
    host = root / name / "host"
    host.mkdir(parents=True)
    args = ["--allow-path", str(host), "--net-allow", "*,host.boxlite.internal"]
    tokens_file: Path | None = None
    token_a = token_b = None
    if use_auth:
        token_a, token_b = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        tokens_file = root / name / "tokens"
        tokens_file.write_text(f"{token_a} alice\n{token_b} bob\n")
        tokens_file.chmod(0o600)
        args += ["--auth-tokens-file", str(tokens_file)]
    attempts: list[Attempt] = []
    async with _server(root, name, args) as server, AsyncExitStack() as stack:
        a_client = await stack.enter_async_context(_client(server.url, token_a, "legacy"))
        a = await _setup_a(a_client, server.home, "alice" if use_auth else "", token_a or "")
        a.server_port = int(urlsplit(server.url).port or 0)
        a.where = locate(a.home, [a.running, a.stopped], server.pid)
        attackers = [("B legacy session", "legacy")]
        if use_auth:
            attackers.append(("B 2026-07-28", "auto"))
        for label, mode in attackers:
            b_client = await stack.enter_async_context(_client(server.url, token_b, mode))
            mine = Path((await ok(b_client, "runtime_info"))["policy"]["allowed_host_paths"][0])
            (mine / "b-in.txt").write_text("B's file\n")  # so copy_in gets past the path
            await _attack(Attacker(b_client, label, a, attempts), tokens_file)
        await _unharmed(a_client, a, attempts)
    return ScenarioResult(name, [label for label, _ in attackers], attempts, a.where)


async def run_probe(root: Path | None = None) -> ProbeResult:
    """Both scenarios. ``root`` holds homes and host directories; it should not be under
    /tmp, which boxes see as their own tmpfs: the default home (~/.local/share) is not."""
    began = anyio.current_time()
    root = (
        Path(tempfile.mkdtemp(prefix="boxlite-isolation-", dir="/var/tmp"))
        if root is None
        else root
    )
    scenarios = [
        await _scenario("bearer", root, use_auth=True),
        await _scenario("sessions", root, use_auth=False),
    ]
    return ProbeResult(scenarios, anyio.current_time() - began)


def report(result: ProbeResult, command: str) -> str:
    lines = [f"### Isolation probe (`{command}`, {result.seconds:.0f} s)", ""]
    for scenario in result.scenarios:
        title = (
            "bearer auth, owners alice (A) and bob (B)"
            if scenario.name == "bearer"
            else "no auth, two handshake-era sessions"
        )
        lines += [
            f"#### {scenario.name}: {title}; B attacks as {', '.join(scenario.attackers)}",
            "",
        ]
        rows = []
        for kind in KINDS:
            of_kind = [x for x in scenario.attempts if x.kind == kind]
            if not of_kind:
                continue
            wins = [x for x in of_kind if x.success]
            example = wins[0] if wins else of_kind[0]
            rows.append(
                (
                    kind,
                    len(of_kind),
                    f"**{len(wins)}**" if wins else "0",
                    f"{example.attack[:90]} → {example.detail[:110]}",
                )
            )
        lines += [
            render(("attack kind", "attempts", "successes", "example (a success if any)"), rows),
            "",
        ]
    for scenario in result.scenarios:
        where = scenario.where
        if where is not None:
            checked = ", ".join(f"{k} {'yes' if v else '**NO**'}" for k, v in where.checked.items())
            lines.append(
                f"{scenario.name}: A's files located on the host ({len(where.images)} "
                f"disk images, {len(where.loops)} loop devices, {len(where.server_fds)} "
                f"server fds, {len(where.sandbox_pids)} sandbox processes); confirmed "
                f"from the host: {checked}."
            )
    lines.append("")
    wins = result.successes
    total = sum(len(s.attempts) for s in result.scenarios)
    lines.append(f"{total} attempts, {len(wins)} successes.")
    if wins:
        lines += ["", "Successes (breaches):"]
        lines += [f"- [{w.kind}] {w.attack[:120]}: {w.detail[:160]}" for w in wins]
    return "\n".join(lines)
