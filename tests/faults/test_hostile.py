"""The fast variant of ``python -m tools.hostile_fuzz``: every hostile behaviour once, per API
generation, against the real RestRuntime over real sockets.

The fuzz runs once for the module (hostile server in a child process, probes
concurrently, size probes one by one); each test checks one probe's verdict: no
exception but BoxliteError and those with a clear message, nothing written outside
the destination, bounded memory, no hang past the client's settings, the
behaviour actually met.

``KNOWN_BUGS`` are behaviours the REST client does not survive yet. Their tests are
strict xfails: they fail today, showing the bug, and turn into a failure the day the
client is fixed, so the entry is removed then. Each reason names the bug and its fix.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tools.faultproxy.upstream import REPO
from tools.hostile_fuzz.run import PROBES, QUICK, Result, fuzz, plan
from tools.hostile_server import BEHAVIOURS

pytestmark = pytest.mark.anyio

KNOWN_BUGS: dict[str, str] = {}

CASES = [(b.name, g) for b, g in plan(QUICK, None, {"0.9", "0.10"}, full=False)]


@pytest.fixture(scope="module")
async def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Result]:
    async with asyncio.timeout(300):  # each probe has its deadline; this bounds the rest
        results = await fuzz(QUICK, tmp_path_factory.mktemp("hostile"))
    return {(r.behaviour.name, r.generation): r for r in results}


def _case(name: str, generation: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])] if name in KNOWN_BUGS else []
    return pytest.param(name, generation, marks=marks, id=f"{name}-{generation}")


@pytest.mark.parametrize(("name", "generation"), [_case(n, g) for n, g in CASES])
async def test_hostile_behaviour(
    verdicts: dict[tuple[str, str], Result], name: str, generation: str
) -> None:
    result = verdicts[(name, generation)]
    said = result.message or result.note
    assert result.passed, (
        f"{result.outcome} {result.error_type} after {result.seconds:.1f}s: "
        + "; ".join(result.problems)
        + f". The client said: {said[:300]}"
    )


async def test_nothing_escaped_anywhere(verdicts: dict[tuple[str, str], Result]) -> None:
    """Whatever else failed, no probe wrote outside its destination."""
    escaped = [
        (key, p)
        for key, r in verdicts.items()
        for p in r.problems
        if p.startswith(("written outside", "marker found", "left behind"))
    ]
    assert escaped == []


def test_the_catalogue_is_complete() -> None:
    assert {b.probe for b in BEHAVIOURS} <= set(PROBES)
    names = [b.name for b in BEHAVIOURS]
    assert len(names) == len(set(names)) and set(KNOWN_BUGS) <= set(names)
    categories = {b.category for b in BEHAVIOURS}
    assert categories == {"files", "sse", "websocket", "json", "http"}


def test_the_command_prints_its_tables() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.hostile_fuzz",
            "--quick",
            "--only",
            "tar-dotdot,tar-hardlink-abs,sse-bad-base64,ws-exit-without-code",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| tar-dotdot | 0.9 | error UnsafeArchiveError |" in done.stdout
    assert "| **all** | 6 | 6 |" in done.stdout
