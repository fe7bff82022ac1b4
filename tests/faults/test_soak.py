"""The fast variant of ``python -m tools.fault_soak``: 100 execs per API generation through the
cutting proxy lose, corrupt and repeat nothing and never hang; a server killed with
SIGKILL mid-exec is a clear UnavailableError within the client's patience."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.fault_soak.run import SERVER_ARGS, kill_scenario, soak_generation
from tools.faultproxy import CutPolicy
from tools.faultproxy.upstream import REPO, ServerProcess

pytestmark = pytest.mark.anyio

GENERATIONS = ["0.9", "0.10"]
POLICY = CutPolicy(probability=0.2, stream_probability=0.5, seed=2024)


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(tmp_path_factory.mktemp("soak") / "home", *SERVER_ARGS) as running:
        yield running


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_100_execs_through_random_cuts_lose_nothing(
    server: ServerProcess, generation: str
) -> None:
    async with asyncio.timeout(240):  # each exec has its deadline; this bounds the rest
        result = await soak_generation(
            server,
            generation,
            100,
            POLICY,
            concurrency=8,  # type: ignore[arg-type]
            deadline=60.0,
            boxes=2,
            seed=7,
        )
    bad = [(o.job.kind, o.verdict, o.detail) for o in result.outcomes if o.verdict != "ok"]
    assert len(result.outcomes) == 100 and bad == []
    assert result.boxes_found == result.boxes_expected == 2  # retried creates made one box each
    assert result.violations == []
    stream = "sse" if generation == "0.9" else "ws"
    mid = sum(n for where, n in result.cuts_where.items() if where.startswith(stream))
    assert result.cuts >= 20 and mid >= 10, result.cuts_where  # the cuts did strike streams


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_a_server_killed_mid_exec_is_a_clear_error_in_time(
    tmp_path: Path, generation: str
) -> None:
    async with asyncio.timeout(120):
        result = await kill_scenario(tmp_path / "home", generation)  # type: ignore[arg-type]
    assert result.passed, result.problem
    assert result.error_type == "UnavailableError" and result.seconds <= result.budget
    assert result.next_call.startswith("UnavailableError")


def test_the_command_prints_its_tables(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.fault_soak", "--execs", "10", "--only", "soak"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 0.9 | 10 |" in done.stdout and "| 0.10 | 10 |" in done.stdout
    assert "| where the cut landed |" in done.stdout
