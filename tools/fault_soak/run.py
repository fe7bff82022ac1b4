"""Fault soak: execs through a connection-cutting proxy lose no output and never hang.

    python -m tools.fault_soak                  # 1000 execs per API generation, then kill -9
    python -m tools.fault_soak --execs 100 --seed 7 --probability 0.5
    python -m tools.fault_soak --only kill      # just the killed-server scenario

Two parts, both over real sockets on 127.0.0.1, against the project's BoxLite server
(``python -m tools.boxlite_server --strict``, a child process, over the bwrap runtime):

1. **Soak.** For each API generation (0.9: SSE output resumed with ``Last-Event-ID``;
   0.10: WebSocket attach re-attached with offsets), a ``RestRuntime`` talks to the
   server through ``tools.faultproxy.FaultProxy``, which cuts connections at random
   byte offsets in both directions (mid-request, mid-response, mid-SSE event,
   mid-WebSocket frame). ``--execs`` commands run, ``--concurrency`` at a time,
   each under an overall deadline: fast ``printf``, multi-chunk output, stdout and
   stderr interleaved with an exit code, large text, binary. Every exec's stdout,
   stderr and exit code are compared byte for byte with what the command must print.
   Boxes are created through the proxy too; a retried create must not make two.
2. **Killed server.** An exec is running and has printed; the server gets SIGKILL.
   The client must fail with an ``UnavailableError`` that says what happened, within
   its configured patience (``reconnect_seconds`` plus one request ``timeout``), and
   the next call must fail the same way at once.

Prints Markdown tables; exits 1 on any lost, corrupted or duplicated output, any
hang, any exception that is not a ``BoxliteError``, more errors than
``--max-errors``, or a killed-server check that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from pydantic import SecretStr

from boxlite_mcp.runtime.errors import BoxliteError, UnavailableError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings
from boxlite_mcp.runtime.rest.box import RestBox
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tools.faultproxy import CutPolicy, FaultProxy
from tools.faultproxy.policy import Per, Scale
from tools.faultproxy.upstream import ServerProcess
from tools.soaklib.report import command_line

log = logging.getLogger("fault_soak")

Generation = Literal["0.9", "0.10"]
GENERATIONS: tuple[Generation, ...] = ("0.9", "0.10")
API_KEY = "blk_fault-soak-key"
CLIENT_ID = "fault-soak"
CLIENT_SECRET = "fault-soak-secret"
SERVER_ARGS = (
    "--strict",
    "--fault-api",
    "--log-level",
    "error",
    "--api-key",
    API_KEY,
    "--client-id",
    CLIENT_ID,
    "--client-secret",
    CLIENT_SECRET,
)


# -- workload ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """One command and exactly what it must produce."""

    kind: str
    argv: tuple[str, ...]
    stdout: bytes
    stderr: bytes = b""
    exit_code: int = 0


_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def make_job(index: int, rng: random.Random) -> Job:
    """The ``index``-th command of the soak: its kind drawn from ``rng``."""
    kind = rng.choices(
        ("fast", "chunks", "interleaved", "large", "binary"), weights=(35, 20, 20, 15, 10)
    )[0]
    tag = f"{index:05d}"
    if kind == "fast":
        return Job(kind, ("printf", "fast %s\\n", tag), f"fast {tag}\n".encode())
    if kind == "chunks":
        n = rng.randint(3, 25)
        script = f'for i in $(seq 1 {n}); do echo "chunk-$i-{tag}"; sleep 0.003; done'
        return Job(
            kind,
            ("sh", "-c", script),
            "".join(f"chunk-{i}-{tag}\n" for i in range(1, n + 1)).encode(),
        )
    if kind == "interleaved":
        n, code = rng.randint(5, 200), rng.choice((0, 0, 1, 3, 42))
        script = (
            f'for i in $(seq 1 {n}); do echo "out-$i-{tag}"; echo "err-$i-{tag}" >&2; '
            f"done; exit {code}"
        )
        return Job(
            kind,
            ("sh", "-c", script),
            "".join(f"out-{i}-{tag}\n" for i in range(1, n + 1)).encode(),
            "".join(f"err-{i}-{tag}\n" for i in range(1, n + 1)).encode(),
            code,
        )
    if kind == "large":
        n = rng.randint(2_000, 40_000)  # 100 KB to 2 MB
        return Job(
            kind,
            ("seq", "-f", f"row-%06g-{_ALPHABET}", "1", str(n)),
            "".join(f"row-{i:06d}-{_ALPHABET}\n" for i in range(1, n + 1)).encode(),
        )
    repeat = rng.randint(1, 400)  # every byte value, up to 100 KB, on stderr too
    escapes = "".join(f"\\0{b:03o}" for b in range(256))
    script = (
        f"i=0; while [ $i -lt {repeat} ]; do printf '%b' '{escapes}'; i=$((i+1)); done; "
        f"printf '%b' '{escapes}' >&2"
    )
    return Job(kind, ("sh", "-c", script), bytes(range(256)) * repeat, bytes(range(256)))


# -- one generation's soak -----------------------------------------------------------


@dataclass
class Outcome:
    """What one exec did."""

    job: Job
    seconds: float
    verdict: str  # ok | lost | corrupted | duplicated | hang | error | crash
    detail: str = ""


@dataclass
class SoakResult:
    generation: Generation
    outcomes: list[Outcome] = field(default_factory=list)
    cuts: int = 0
    cuts_where: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    boxes_expected: int = 0
    boxes_found: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, verdict: str) -> int:
        return sum(1 for o in self.outcomes if o.verdict == verdict)

    def percentile(self, q: float) -> float:
        times = sorted(o.seconds for o in self.outcomes if o.verdict != "hang")
        if not times:
            return 0.0
        return times[min(len(times) - 1, round(q * (len(times) - 1)))]

    @property
    def failures(self) -> int:
        bad = ("lost", "corrupted", "duplicated", "hang", "crash")
        return sum(self.count(v) for v in bad)


def classify(
    job: Job, stdout: bytes, stderr: bytes, exit_code: int, error_message: str | None
) -> tuple[str, str]:
    """(verdict, detail) of one finished exec against what it had to produce."""
    for name, got, want in (("stdout", stdout, job.stdout), ("stderr", stderr, job.stderr)):
        if got == want:
            continue
        if len(got) < len(want):
            return "lost", f"{name}: {len(want) - len(got)} of {len(want)} bytes missing"
        if len(got) > len(want):
            return "duplicated", f"{name}: {len(got) - len(want)} bytes more than {len(want)}"
        first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        return "corrupted", f"{name}: differs from byte {first} of {len(want)}"
    if exit_code != job.exit_code:
        return "corrupted", f"exit code {exit_code}, expected {job.exit_code}"
    if error_message and "lost" in error_message:
        return "lost", f"the client reports: {error_message}"
    return "ok", ""


def client_settings(url: str, generation: Generation, **overrides: object) -> RestSettings:
    """Patient enough to ride out cuts, quick to retry; credentials for ``generation``."""
    auth: dict[str, object] = (
        {"client_id": CLIENT_ID, "client_secret": SecretStr(CLIENT_SECRET)}
        if generation == "0.9"
        else {"api_key": SecretStr(API_KEY)}
    )
    values: dict[str, object] = {
        "url": url,
        "api": generation,
        "connect_timeout": 5.0,
        "timeout": 20.0,
        "stream_idle_timeout": 10.0,
        "retries": 10,
        "backoff_initial": 0.02,
        "backoff_max": 0.5,
        "reconnect_seconds": 30.0,
        **auth,
        **overrides,
    }
    return RestSettings.model_validate(values)


async def run_exec(box: RestBox, job: Job, deadline: float) -> Outcome:
    started = time.perf_counter()
    execution = None
    try:
        async with asyncio.timeout(deadline):
            execution = await box.exec(ExecRequest(command=job.argv[0], args=list(job.argv[1:])))
            out, err = bytearray(), bytearray()
            async for chunk in execution.output():
                (out if chunk.stream == "stdout" else err).extend(chunk.data)
            result = await execution.wait()
    except TimeoutError:
        if execution is not None:
            with contextlib.suppress(BoxliteError, TimeoutError):
                async with asyncio.timeout(2):
                    await execution.kill()
        return Outcome(
            job, time.perf_counter() - started, "hang", f"no result within {deadline:g}s"
        )
    except BoxliteError as exc:
        return Outcome(
            job, time.perf_counter() - started, "error", f"{type(exc).__name__}: {exc.message}"
        )
    except Exception as exc:  # the point of the soak: report, never crash the report
        return Outcome(job, time.perf_counter() - started, "crash", repr(exc))
    verdict, detail = classify(job, bytes(out), bytes(err), result.exit_code, result.error_message)
    return Outcome(job, time.perf_counter() - started, verdict, detail)


async def create_box(runtime: RestRuntime, name: str, deadline: float) -> RestBox:
    async with asyncio.timeout(deadline):
        return await runtime.create(BoxOptions(name=name))


async def soak_generation(
    server: ServerProcess,
    generation: Generation,
    execs: int,
    policy: CutPolicy,
    concurrency: int,
    deadline: float,
    boxes: int,
    seed: int,
) -> SoakResult:
    """``execs`` commands through a fresh cutting proxy, in ``boxes`` boxes."""
    result = SoakResult(generation)
    rng = random.Random(f"{seed}:{generation}")
    jobs = [make_job(i, rng) for i in range(execs)]
    started = time.perf_counter()
    async with FaultProxy("127.0.0.1", server.port, policy) as proxy:
        runtime = RestRuntime(client_settings(proxy.url, generation))
        try:
            prefix = f"soak-{generation.replace('.', '')}-{seed}"
            made = [await create_box(runtime, f"{prefix}-{i}", deadline) for i in range(boxes)]
            result.boxes_expected = len(made)
            queue: asyncio.Queue[tuple[int, Job]] = asyncio.Queue()
            for item in enumerate(jobs):
                queue.put_nowait(item)

            async def worker() -> None:
                while not queue.empty():
                    index, job = queue.get_nowait()
                    outcome = await run_exec(made[index % len(made)], job, deadline)
                    result.outcomes.append(outcome)
                    if outcome.verdict not in ("ok",):
                        log.warning(
                            "%s exec %d (%s): %s %s",
                            generation,
                            index,
                            job.kind,
                            outcome.verdict,
                            outcome.detail,
                        )

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            await runtime.aclose()
        result.cuts = len(proxy.stats.cuts)
        result.cuts_where = proxy.stats.cuts_by_where()
        result.connections = proxy.stats.connections
    result.seconds = time.perf_counter() - started
    # Check the server's view without the proxy: one box per create, no contract violation.
    direct = RestRuntime(client_settings(server.url, generation))
    try:
        names = [b.name for b in await direct.list()]
        result.boxes_found = sum(1 for n in names if n and n.startswith(prefix))
        for name in names:
            if name and name.startswith(prefix):
                await direct.remove(name, force=True)
    finally:
        await direct.aclose()
    async with httpx.AsyncClient(timeout=30) as http:
        result.violations = list((await http.get(f"{server.url}/_violations")).json())
    return result


# -- the killed server ---------------------------------------------------------------


@dataclass
class KillResult:
    generation: Generation
    error_type: str = ""
    message: str = ""
    seconds: float = 0.0
    budget: float = 0.0
    next_call: str = ""
    next_call_seconds: float = 0.0
    passed: bool = False
    problem: str = ""


KILL_SETTINGS: dict[str, object] = {
    "connect_timeout": 2.0,
    "timeout": 5.0,
    "stream_idle_timeout": 5.0,
    "retries": 2,
    "backoff_initial": 0.05,
    "backoff_max": 0.5,
    "reconnect_seconds": 3.0,
}


async def kill_scenario(home: Path, generation: Generation) -> KillResult:
    """SIGKILL the server while an exec streams; the client must say so, in time."""
    result = KillResult(generation)
    settings_fields = dict(KILL_SETTINGS)
    reconnect = float(settings_fields["reconnect_seconds"])  # type: ignore[arg-type]
    timeout = float(settings_fields["timeout"])  # type: ignore[arg-type]
    result.budget = reconnect + timeout
    async with ServerProcess(home, *SERVER_ARGS) as server:
        runtime = RestRuntime(client_settings(server.url, generation, **settings_fields))
        try:
            box = await runtime.create(BoxOptions(name=f"kill-{generation.replace('.', '')}"))
            script = (
                'echo started; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'
            )
            execution = await box.exec(ExecRequest(command="sh", args=["-c", script]))
            chunks = execution.output()
            first = await anext(chunks)
            if not first.data.startswith(b"started"):
                result.problem = f"unexpected first output {first.data[:40]!r}"
                return result
            server.kill9()
            killed_at = time.perf_counter()
            try:
                async with asyncio.timeout(result.budget + 10):
                    async for _ in chunks:
                        pass
                    await execution.wait()
                result.problem = "the exec finished normally after its server was killed"
            except TimeoutError:
                result.problem = f"no error within {result.budget + 10:g}s: a hang"
            except BoxliteError as exc:
                result.error_type, result.message = type(exc).__name__, exc.message
            except Exception as exc:
                result.error_type, result.message = type(exc).__name__, repr(exc)
            result.seconds = time.perf_counter() - killed_at
            next_started = time.perf_counter()
            try:
                async with asyncio.timeout(result.budget + 10):
                    await box.info()
                result.next_call = "succeeded"
            except BoxliteError as exc:
                result.next_call = f"{type(exc).__name__}: {exc.message}"
            except Exception as exc:
                result.next_call = f"{type(exc).__name__}: {exc!r}"
            result.next_call_seconds = time.perf_counter() - next_started
        finally:
            await runtime.aclose()
    result.passed, problem = judge_kill(result, server.url)
    result.problem = result.problem or problem
    return result


def judge_kill(result: KillResult, url: str) -> tuple[bool, str]:
    """The killed-server checks: error class, clarity, timing, the next call."""
    if result.problem:
        return False, result.problem
    if result.error_type != UnavailableError.__name__:
        return False, f"expected UnavailableError, got {result.error_type}: {result.message}"
    host = url.removeprefix("http://")
    words = ("reach", "resume", "re-attach", "refused", "unavailable")
    if host not in result.message or not any(w in result.message.lower() for w in words):
        return False, f"the message does not say which server cannot be reached: {result.message}"
    if result.seconds > result.budget:
        return False, f"the error took {result.seconds:.1f}s, over the {result.budget:g}s budget"
    if not result.next_call.startswith("UnavailableError"):
        return False, f"the next call: {result.next_call}"
    if result.next_call_seconds > result.budget:
        return False, f"the next call took {result.next_call_seconds:.1f}s"
    return True, ""


# -- report --------------------------------------------------------------------------


def soak_table(results: list[SoakResult]) -> str:
    lines = [
        "| generation | execs | cuts injected | cuts mid-stream | lost | corrupted | "
        "duplicated | hangs | errors | crashes | boxes made / asked | p50 exec | p99 exec |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        mid = sum(v for k, v in r.cuts_where.items() if k.startswith(("sse", "ws")))
        lines.append(
            f"| {r.generation} | {len(r.outcomes)} | {r.cuts} | {mid} | {r.count('lost')} | "
            f"{r.count('corrupted')} | {r.count('duplicated')} | {r.count('hang')} | "
            f"{r.count('error')} | {r.count('crash')} | {r.boxes_found} / {r.boxes_expected} | "
            f"{r.percentile(0.5) * 1000:.0f} ms | {r.percentile(0.99) * 1000:.0f} ms |"
        )
    return "\n".join(lines)


def cuts_table(results: list[SoakResult]) -> str:
    wheres = sorted({w for r in results for w in r.cuts_where})
    lines = [
        "| where the cut landed | " + " | ".join(r.generation for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for where in wheres:
        lines.append(
            f"| {where} | " + " | ".join(str(r.cuts_where.get(where, 0)) for r in results) + " |"
        )
    return "\n".join(lines)


def kill_table(results: list[KillResult]) -> str:
    lines = [
        "| generation | error | after the kill | budget | next call | verdict |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in results:
        message = (r.message[:160] + "…") if len(r.message) > 160 else r.message
        verdict = "pass" if r.passed else f"FAIL: {r.problem}"
        nxt = r.next_call.split(":", 1)[0]
        lines.append(
            f"| {r.generation} | {r.error_type}: {message} | {r.seconds:.2f} s | "
            f"{r.budget:g} s | {nxt} in {r.next_call_seconds:.2f} s | {verdict} |"
        )
    return "\n".join(lines)


# -- command -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--execs", type=int, default=1000, help="execs per API generation")
    p.add_argument("--generations", default="0.9,0.10")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--boxes", type=int, default=2, help="boxes per generation")
    p.add_argument(
        "--probability",
        type=float,
        default=0.2,
        help="cut probability per request/response exchange (see --per)",
    )
    p.add_argument(
        "--stream-probability",
        type=float,
        default=0.5,
        help="cut probability of an exchange carrying exec output (SSE, WebSocket)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=4 * 1024 * 1024,
        help="cuts land within the first WINDOW bytes of an exchange (log-uniform)",
    )
    p.add_argument("--per", choices=["exchange", "connection", "window"], default="exchange")
    p.add_argument("--scale", choices=["log", "uniform"], default="log")
    p.add_argument("--mode", choices=["reset", "close", "mixed"], default="mixed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--deadline", type=float, default=90.0, help="seconds allowed per exec")
    p.add_argument(
        "--max-errors",
        type=int,
        default=0,
        help="clear errors (BoxliteError) tolerated before exiting 1",
    )
    p.add_argument("--only", choices=["soak", "kill"], default=None)
    p.add_argument("--home", type=Path, default=None, help="keep server state here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def policy_from(args: argparse.Namespace) -> CutPolicy:
    per: Per = args.per
    scale: Scale = args.scale
    return CutPolicy(
        probability=args.probability,
        window_bytes=args.window,
        per=per,
        stream_probability=args.stream_probability,
        scale=scale,
        mode=args.mode,
        seed=args.seed,
    )


async def soak(args: argparse.Namespace, root: Path) -> list[SoakResult]:
    generations = [g for g in GENERATIONS if g in args.generations.split(",")]
    results: list[SoakResult] = []
    async with ServerProcess(root / "soak-home", *SERVER_ARGS) as server:
        for generation in generations:
            results.append(
                await soak_generation(
                    server,
                    generation,
                    args.execs,
                    policy_from(args),
                    args.concurrency,
                    args.deadline,
                    args.boxes,
                    args.seed,
                )
            )
    return results


async def main_async(args: argparse.Namespace) -> int:
    status = 0
    with tempfile.TemporaryDirectory(prefix="fault-soak-") as tmp:
        root = args.home or Path(tmp)
        print(
            f"# Fault soak\n\nMachine: {platform.platform()}, Python "
            f"{platform.python_version()}, {_cpus()} CPUs. Command: "
            f"`{command_line('fault_soak', None)}`\n"
        )
        if args.only in (None, "soak"):
            started = time.perf_counter()
            results = await soak(args, root)
            policy = policy_from(args)
            streams = (
                f" ({policy.stream_probability} for output streams)"
                if policy.per == "exchange" and policy.stream_probability is not None
                else ""
            )
            spread = "log-uniform" if policy.scale == "log" else "uniform"
            print(
                f"Cuts: probability {policy.probability} per {policy.per}{streams}, at a "
                f"{spread} byte offset below {policy.window_bytes}, either direction, "
                f"mode {policy.mode}, seed {policy.seed}; "
                f"{args.concurrency} execs at a time; deadline {args.deadline:g} s per exec; "
                f"{time.perf_counter() - started:.0f} s in all.\n"
            )
            print(soak_table(results) + "\n")
            print(cuts_table(results) + "\n")
            for r in results:
                errors = Counter(
                    o.detail.split(":", 1)[0] for o in r.outcomes if o.verdict == "error"
                )
                if errors:
                    print(f"{r.generation} errors: {dict(errors)}")
                if r.violations:
                    print(
                        f"{r.generation}: {len(r.violations)} OpenAPI violations, e.g. "
                        f"{r.violations[0]}"
                    )
                bad = [o for o in r.outcomes if o.verdict not in ("ok", "error")][:5]
                for o in bad:
                    print(f"  {r.generation} {o.job.kind}: {o.verdict}: {o.detail}")
                if (
                    r.failures
                    or r.count("error") > args.max_errors
                    or r.violations
                    or r.boxes_found != r.boxes_expected
                ):
                    status = 1
        if args.only in (None, "kill"):
            kills = [await kill_scenario(root / f"kill-home-{g}", g) for g in GENERATIONS]
            print("\n## A server killed mid-exec (SIGKILL)\n")
            print(
                "Client settings: " + ", ".join(f"{k}={v}" for k, v in KILL_SETTINGS.items()) + "\n"
            )
            print(kill_table(kills))
            if not all(k.passed for k in kills):
                status = 1
    return status


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise SystemExit(asyncio.run(main_async(args)))
