"""Hostile fuzz: the REST runtime against a malicious BoxLite server, every behaviour.

    python -m tools.hostile_fuzz                 # full sizes: 256 MiB bodies, 1.1M-entry tars
    python -m tools.hostile_fuzz --quick         # test-suite sizes (48 MiB, 5,000 entries)
    python -m tools.hostile_fuzz --only tar-dotdot,sse-trickle --generations 0.9

Starts ``python -m tools.hostile_server`` (a child process, so its memory is not
counted) and, for every behaviour of ``tools/hostile_server/catalogue.py`` and
every API generation it applies to, points a fresh ``RestRuntime`` at it and makes
the call that meets it (copy a file out, run a command, get a box...). Each probe
asserts what any BoxLite server, however hostile, must not be able to do to the
client:

- **no crash**: the call returns, or raises a ``BoxliteError`` subclass whose
  message is clear (non-empty, at most 1,000 characters, no traceback, no
  pydantic or task-group internals); and for behaviours whose catalogue entry
  says what a correct client does (``expect``), that it does it;
- **nothing written outside the destination**: a sentinel tree next to the
  destination is hashed before and after, the whole probe directory is compared
  file by file (only the destination may change, and a refused copy leaves no
  destination and no staging directory behind), and the temporary directory of
  the host is searched for the marker every hostile entry name carries;
- **bounded memory**: a behaviour about size is met in a fresh child process of
  its own (so memory an earlier probe freed but the allocator kept cannot hide a
  new peak), whose peak resident memory (``VmHWM``) may grow by at most
  ``--memory-bound`` MiB over what it held when the probe began;
- **no hang**: every probe must end within the time its settings allow
  (``--quick``: exec timeout 1 s, request timeout 1 s, one retry, resuming for
  1.5 s); past it, it is cut off and counted as a hang.

Prints Markdown tables (a summary per category, then every probe); exits 1 if any
probe fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from boxlite_mcp.runtime.errors import BoxliteError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tools.faultproxy.upstream import ServerProcess
from tools.hostile_server import BEHAVIOURS, BY_NAME, MARKER, Behaviour
from tools.soaklib.report import command_line

MiB = 1024 * 1024
MESSAGE_LIMIT = 1000
UNCLEAR = ("Traceback", "pydantic.dev", "TaskGroup", "ExceptionGroup", " object at 0x")
KEEP_OUTPUT = 1 * MiB  # stdout kept by an exec probe for comparison; the rest is counted


# -- scale ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Sizes of the hostile server and the client's patience."""

    big_bytes: int
    tar_entries: int
    memory_bound_mib: int
    exec_timeout: float
    client: dict[str, Any]
    #: Probes at once. Each makes a RestRuntime, whose httpx client costs ~50 ms of
    #: event-loop time to build (SSL context): more at once starves the others' timers.
    concurrency: int = 16

    @property
    def budget(self) -> float:
        """The longest a correct client may take to fail, with these settings."""
        c = self.client
        per_request = (c["retries"] + 1) * (c["timeout"] + c["connect_timeout"] + c["backoff_max"])
        return float(self.exec_timeout + c["reconnect_seconds"] + per_request + 2.0)


QUICK = Scale(
    big_bytes=48 * MiB,
    tar_entries=5_000,
    memory_bound_mib=32,
    exec_timeout=1.0,
    client={
        "timeout": 3.0,
        "connect_timeout": 2.0,
        "stream_idle_timeout": 1.0,
        "retries": 1,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "reconnect_seconds": 1.5,
        "ws_ping_interval": 1.0,
    },
)
FULL = Scale(
    big_bytes=256 * MiB,
    tar_entries=1_100_000,
    memory_bound_mib=64,
    exec_timeout=2.0,
    client={
        "timeout": 5.0,
        "connect_timeout": 2.0,
        "stream_idle_timeout": 5.0,
        "retries": 2,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
        "reconnect_seconds": 5.0,
        "ws_ping_interval": 5.0,
    },
)


def server_args(scale: Scale) -> list[str]:
    return ["--big-bytes", str(scale.big_bytes), "--tar-entries", str(scale.tar_entries)]


# -- the host around the destination -------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str
    size: int
    digest: str
    mode: int
    link: str = ""


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under ``root``: type, size, content hash, mode, link target."""
    found: dict[str, Entry] = {}
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = Entry("link", 0, "", st.st_mode, os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                found[rel] = Entry("file", st.st_size, digest, st.st_mode)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = Entry("dir", 0, "", st.st_mode)
            else:
                found[rel] = Entry("special", 0, "", st.st_mode)
    return found


@dataclass
class Sandbox:
    """One probe's corner of the host: a sentinel tree, a destination, nothing else."""

    root: Path

    @property
    def sentinel(self) -> Path:
        return self.root / "sentinel"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def dest(self) -> Path:
        return self.work / "dest"

    @property
    def exports(self) -> Path:
        return self.work / "exports"

    def prepare(self) -> dict[str, Entry]:
        (self.sentinel / "sub").mkdir(parents=True)
        (self.sentinel / "victim.txt").write_text("sentinel: must never change\n")
        (self.sentinel / "sub" / "deep.txt").write_text("sentinel too\n")
        self.exports.mkdir(parents=True)
        return snapshot(self.root)

    def changes(self, before: dict[str, Entry], failed: bool) -> list[str]:
        """What changed outside the destination, or what a refused copy left behind."""
        after = snapshot(self.root)
        problems: list[str] = []
        allowed = ("work/dest", "work/exports")
        for path in sorted(set(before) | set(after)):
            if before.get(path) == after.get(path):
                continue
            inside = any(path == a or path.startswith(a + "/") for a in allowed)
            if not inside:
                change = (
                    "created"
                    if path not in before
                    else ("removed" if path not in after else "modified")
                )
                problems.append(f"{change} {path}")
            elif failed and path.startswith("work/dest"):
                problems.append(f"left behind after the error: {path}")
        return problems


def marker_hits(places: list[Path]) -> list[str]:
    """Files named with the hostile marker directly in ``places`` (the host's temp area)."""
    hits: list[str] = []
    for place in places:
        with contextlib.suppress(OSError):
            hits += [str(place / n) for n in os.listdir(place) if MARKER in n]
    return hits


# -- memory --------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def start_measuring() -> int:
    """Reset the peak-RSS counter (Linux ``clear_refs`` 5); returns the RSS now, in KiB."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def peak_since(baseline_kib: int) -> float:
    """MiB of resident memory at the peak since ``start_measuring``, above its baseline."""
    return max(0, _status_kib("VmHWM") - baseline_kib) / 1024


# -- probes --------------------------------------------------------------------------


@dataclass
class Result:
    behaviour: Behaviour
    generation: str
    outcome: str = ""  # ok | error | crash | hang
    error_type: str = ""
    message: str = ""
    seconds: float = 0.0
    memory_mib: float | None = None
    problems: list[str] = field(default_factory=list)
    note: str = ""
    explained: bool = False  # an exec result that is no success and says why
    stdout_bytes: int = 0  # delivered by an exec probe, whatever its end

    @property
    def passed(self) -> bool:
        return not self.problems


def settings_for(url: str, generation: str, scale: Scale) -> RestSettings:
    auth: dict[str, Any] = (
        {"client_id": "fuzz", "client_secret": SecretStr("fuzz-secret")}
        if generation == "0.9"
        else {"api_key": SecretStr("blk_fuzz")}
    )
    return RestSettings.model_validate({"url": url, "api": generation, **scale.client, **auth})


ProbeCall = Callable[[RestRuntime, Sandbox, Scale, Result], Awaitable[None]]


async def _exec(
    runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result, read: bool
) -> None:
    handle = await runtime.get("box-hostile-1")
    execution = await handle.exec(
        ExecRequest(command="echo", args=["hello"], timeout_seconds=scale.exec_timeout)
    )
    kept = bytearray()
    if read:
        async for chunk in execution.output():
            if chunk.stream == "stdout":
                result.stdout_bytes += len(chunk.data)
                if len(kept) < KEEP_OUTPUT:
                    kept += chunk.data[: KEEP_OUTPUT - len(kept)]
    outcome = await execution.wait()
    if not read:
        async for chunk in execution.output():  # what was kept for a late reader
            result.stdout_bytes += len(chunk.data)
    total = result.stdout_bytes
    result.note = f"exit {outcome.exit_code}, {total} bytes of stdout"
    if outcome.error_message:
        result.note += f", error_message {outcome.error_message[:80]!r}"
    result.explained = not outcome.success and bool(outcome.error_message)
    behaviour = result.behaviour
    want = behaviour.stdout
    if want is not None and (bytes(kept) != want or total != len(want)):
        result.problems.append(f"stdout {bytes(kept[:40])!r} ({total} bytes), expected {want!r}")


async def probe_exec(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    await _exec(runtime, box, scale, result, read=True)


async def probe_exec_unread(
    runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result
) -> None:
    await _exec(runtime, box, scale, result, read=False)


async def probe_copy_out(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    handle = await runtime.get("box-hostile-1")
    await handle.copy_out(str(box.sentinel), box.dest)
    files = sum(len(f) for _, _, f in os.walk(box.dest)) if box.dest.is_dir() else 1
    result.note = f"unpacked: {files} files"


async def probe_export(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    handle = await runtime.get("box-hostile-1")
    written = await handle.export(box.exports)
    result.note = f"wrote {written.name}"


async def probe_create(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    made = await runtime.create(BoxOptions(name="fuzz"))
    result.note = f"box {made.id[:40]!r}"


async def probe_get(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    found = await runtime.get("box-hostile-1")
    result.note = f"box {found.id[:40]!r}"


async def probe_list(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    result.note = f"{len(await runtime.list())} boxes"


async def probe_snapshot_list(
    runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result
) -> None:
    handle = await runtime.get("box-hostile-1")
    result.note = f"{len(await handle.snapshot_list())} snapshots"


async def probe_metrics(runtime: RestRuntime, box: Sandbox, scale: Scale, result: Result) -> None:
    await (await runtime.get("box-hostile-1")).metrics()


PROBES: dict[str, ProbeCall] = {
    "exec": probe_exec,
    "exec_unread": probe_exec_unread,
    "copy_out": probe_copy_out,
    "export": probe_export,
    "create": probe_create,
    "get": probe_get,
    "list": probe_list,
    "snapshot_list": probe_snapshot_list,
    "metrics": probe_metrics,
}


def unclear(message: str) -> str | None:
    if not message.strip():
        return "an empty message"
    if len(message) > MESSAGE_LIMIT:
        return f"a {len(message)}-character message"
    for fragment in UNCLEAR:
        if fragment in message:
            return f"internals in the message ({fragment.strip()!r})"
    return None


async def probe(
    server_url: str, behaviour: Behaviour, generation: str, root: Path, scale: Scale, measure: bool
) -> Result:
    """Meet ``behaviour`` once; record what happened and every problem with it."""
    result = Result(behaviour, generation)
    box = Sandbox(root / f"{behaviour.name}-{generation}")
    before = box.prepare()
    temp_area = [Path(tempfile.gettempdir()), root, root.parent]
    markers_before = set(marker_hits(temp_area))
    deadline = behaviour.deadline or scale.budget
    url = f"{server_url}/b/{behaviour.name}~{generation}"
    runtime = RestRuntime(settings_for(url, generation, scale))
    baseline = start_measuring() if measure else 0
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            await PROBES[behaviour.probe](runtime, box, scale, result)
        result.outcome = "ok"
    except TimeoutError:
        result.outcome = "hang"
        result.problems.append(f"no answer within {deadline:g}s (the settings allow that long)")
    except BoxliteError as exc:
        result.outcome, result.error_type, result.message = "error", type(exc).__name__, str(exc)
        reason = unclear(result.message)
        if reason is not None:
            result.problems.append(f"unclear error: {reason}")
    except Exception as exc:  # what the fuzz is looking for
        result.outcome, result.error_type, result.message = "crash", type(exc).__name__, str(exc)
        result.problems.append(f"crash: {type(exc).__name__} is not a BoxliteError")
    finally:
        result.seconds = time.perf_counter() - started
        if measure:
            result.memory_mib = peak_since(baseline)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await runtime.aclose()
    if result.memory_mib is not None and result.memory_mib > scale.memory_bound_mib:
        result.problems.append(
            f"memory grew {result.memory_mib:.0f} MiB (bound {scale.memory_bound_mib} MiB)"
        )
    if behaviour.expect == "error" and result.outcome == "ok":
        result.problems.append("accepted what a correct client refuses")
    most = behaviour.stdout_at_most
    if most is not None and result.stdout_bytes > most:
        result.problems.append(
            f"duplicated output: {result.stdout_bytes} bytes of stdout "
            f"delivered, the server produced {most}"
        )
    if behaviour.expect == "stopped" and result.outcome == "ok" and not result.explained:
        result.problems.append("a result that does not say the execution did not end normally")
    if behaviour.expect == "ok" and result.outcome == "error":
        result.problems.append("refused what a correct client accepts")
    result.problems += [
        f"written outside: {p}" for p in box.changes(before, failed=result.outcome != "ok")
    ]
    result.problems += [f"marker found: {p}" for p in set(marker_hits(temp_area)) - markers_before]
    return result


# -- the run -------------------------------------------------------------------------


def plan(
    scale: Scale, only: set[str] | None, generations: set[str], full: bool
) -> list[tuple[Behaviour, str]]:
    chosen = [
        b for b in BEHAVIOURS if (only is None or b.name in only) and (full or not b.full_only)
    ]
    return [(b, g) for b in chosen for g in b.generations if g in generations]


async def run_probes(
    server_url: str, pairs: list[tuple[Behaviour, str]], root: Path, scale: Scale
) -> list[Result]:
    """Size probes each in a child process (their memory is measured), the rest here."""
    results: list[Result] = []
    limit = asyncio.Semaphore(scale.concurrency)

    async def one(behaviour: Behaviour, generation: str) -> None:
        async with limit:
            results.append(await probe(server_url, behaviour, generation, root, scale, False))

    await asyncio.gather(*(one(b, g) for b, g in pairs if not b.memory))

    async def alone(behaviour: Behaviour, generation: str) -> None:
        async with limit:
            results.append(await probe_in_child(server_url, behaviour, generation, root, scale))

    limit = asyncio.Semaphore(4)  # each in its own process: measurements do not mix
    await asyncio.gather(*(alone(b, g) for b, g in pairs if b.memory))
    order = {pair: i for i, pair in enumerate((b.name, g) for b, g in pairs)}
    return sorted(results, key=lambda r: order[(r.behaviour.name, r.generation)])


async def probe_in_child(
    server_url: str, behaviour: Behaviour, generation: str, root: Path, scale: Scale
) -> Result:
    """``probe`` with memory measured, in a fresh ``python -m tools.hostile_fuzz --child``."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.hostile_fuzz",  # the parent was started so; the child inherits cwd and env
        "--child",
        json.dumps(
            {
                "server": server_url,
                "behaviour": behaviour.name,
                "generation": generation,
                "root": str(root),
                "scale": asdict(scale),
            }
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = (behaviour.deadline or scale.budget) + 60
    try:
        out, _ = await asyncio.wait_for(child.communicate(), deadline)
        data = json.loads(out.decode().strip().splitlines()[-1])
    except (TimeoutError, ValueError, IndexError) as exc:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        return Result(
            behaviour,
            generation,
            outcome="crash",
            problems=[f"crash: the probe's child process failed ({exc!r})"],
        )
    return Result(behaviour, generation, **data)


async def child_main(spec: str) -> int:
    """``--child``: one probe, memory measured; its Result as JSON on the last line."""
    args = json.loads(spec)
    scale = Scale(**args["scale"])
    result = await probe(
        args["server"],
        BY_NAME[args["behaviour"]],
        args["generation"],
        Path(args["root"]),
        scale,
        True,
    )
    print(
        json.dumps(
            {
                f.name: getattr(result, f.name)
                for f in fields(result)
                if f.name not in ("behaviour", "generation")
            }
        )
    )
    return 0


async def fuzz(
    scale: Scale,
    root: Path,
    only: set[str] | None = None,
    generations: frozenset[str] = frozenset({"0.9", "0.10"}),
    full: bool = False,
) -> list[Result]:
    """Start the hostile server in a child process and run every probe against it.

    A probe whose behaviour the server never got to play (the client stopped
    before reaching it) fails: it proved nothing.
    """
    async with ServerProcess(
        None,
        *server_args(scale),
        module="tools.hostile_server",
        log_path=root / "hostile-server.log",
    ) as server:
        results = await run_probes(
            server.url, plan(scale, only, set(generations), full), root, scale
        )
        hits: dict[str, int] | None = None
        try:  # the server may still be busy with what abandoned probes asked of it
            async with httpx.AsyncClient(timeout=120) as http:
                hits = (await http.get(f"{server.url}/_hits")).json()
        except httpx.HTTPError as exc:
            print(
                f"hostile_fuzz: cannot read the server's hits ({exc!r}); not checked",
                file=sys.stderr,
            )
    for result in results:
        if hits is not None and not hits.get(f"{result.behaviour.name}~{result.generation}"):
            result.problems.append("never met: the client did not reach the hostile answer")
    return results


# -- report --------------------------------------------------------------------------


def summary_table(results: list[Result]) -> str:
    lines = [
        "| category | probes | pass | crash | hang | escape | memory | unclear | "
        "duplicated | wrong outcome | never met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    categories = sorted({r.behaviour.category for r in results})
    for category in [*categories, "all"]:
        rows = [r for r in results if category in ("all", r.behaviour.category)]
        count = Counter(kind for r in rows for kind in {_kind(p) for p in r.problems})
        label = f"**{category}**" if category == "all" else category
        lines.append(
            f"| {label} | {len(rows)} | {sum(r.passed for r in rows)} | "
            f"{count['crash']} | {count['hang']} | {count['escape']} | "
            f"{count['memory']} | {count['unclear']} | {count['duplicated']} | "
            f"{count['outcome']} | "
            f"{count['unmet']} |"
        )
    return "\n".join(lines)


def _kind(problem: str) -> str:
    if problem.startswith("crash"):
        return "crash"
    if problem.startswith("no answer"):
        return "hang"
    if problem.startswith(("written outside", "marker found", "left behind")):
        return "escape"
    if problem.startswith("memory"):
        return "memory"
    if problem.startswith("unclear"):
        return "unclear"
    if problem.startswith("never met"):
        return "unmet"
    if problem.startswith("duplicated"):
        return "duplicated"
    return "outcome"


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def results_table(results: list[Result]) -> str:
    lines = [
        "| behaviour | gen | outcome | time | memory | verdict | what the client said |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for r in results:
        memory = f"{r.memory_mib:.0f} MiB" if r.memory_mib is not None else ""
        outcome = f"{r.outcome} {r.error_type}".strip()
        said = f"{r.message}" if r.message else r.note
        verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.problems)
        lines.append(
            f"| {r.behaviour.name} | {r.generation} | {outcome} | {r.seconds:.2f} s | "
            f"{memory} | {_cell(verdict, 90)} | {_cell(said)} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="test-suite sizes and timeouts")
    p.add_argument("--only", default=None, help="comma-separated behaviour names")
    p.add_argument("--generations", default="0.9,0.10")
    p.add_argument("--memory-bound", type=int, default=None, help="MiB (default: by scale)")
    p.add_argument("--big-mib", type=int, default=None, help="size of huge bodies, MiB")
    p.add_argument("--tar-entries", type=int, default=None, help="entries of the tar bomb")
    p.add_argument("-v", "--verbose", action="store_true", help="show the client's warnings")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    scale = QUICK if args.quick else FULL
    overrides = {
        "memory_bound_mib": args.memory_bound,
        "tar_entries": args.tar_entries,
        "big_bytes": args.big_mib * MiB if args.big_mib else None,
    }
    scale = replace(scale, **{k: v for k, v in overrides.items() if v is not None})
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="hostile-fuzz-") as tmp:
        started = time.perf_counter()
        results = await fuzz(
            scale, Path(tmp), only, frozenset(args.generations.split(",")), full=not args.quick
        )
        elapsed = time.perf_counter() - started
    print(
        f"# Hostile fuzz\n\nMachine: {platform.platform()}, Python "
        f"{platform.python_version()}, {len(os.sched_getaffinity(0))} CPUs. Command: "
        f"`{command_line('hostile_fuzz', None)}` ({elapsed:.0f} s).\n"
    )
    print(
        f"Sizes: huge bodies {scale.big_bytes // MiB} MiB, tar bomb {scale.tar_entries} "
        f"entries; memory bound {scale.memory_bound_mib} MiB; client "
        + ", ".join(f"{k}={v}" for k, v in scale.client.items())
        + f", exec timeout_seconds={scale.exec_timeout}; a probe is a hang after "
        f"{scale.budget:g} s.\n"
    )
    print(summary_table(results) + "\n")
    print(results_table(results))
    return 0 if all(r.passed for r in results) else 1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.CRITICAL,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.child is not None:
        raise SystemExit(asyncio.run(child_main(args.child)))
    raise SystemExit(asyncio.run(main_async(args)))
