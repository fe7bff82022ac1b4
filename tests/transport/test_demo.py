"""`boxlite-mcp demo` walks its scenario on the default runtime and streams output live."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.app.demo import TICK_SECONDS, TICKS

from .conftest import server_env

pytestmark = pytest.mark.anyio


async def test_demo_succeeds_and_lines_arrive_while_the_program_runs(tmp_path: Path) -> None:
    received: list[tuple[float, str]] = []
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        async with await anyio.open_process(
            [sys.executable, "-m", "boxlite_mcp", "demo", "--home", str(tmp_path / "home")],
            env=server_env(),
            stderr=stderr,
        ) as process:
            assert process.stdout is not None
            buffer = b""
            with anyio.fail_after(180):
                async for chunk in process.stdout:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    now = time.monotonic()
                    received += [(now, line.decode()) for line in lines]
                await process.wait()
    transcript = "\n".join(line for _, line in received)
    assert process.returncode == 0, transcript + errors.read_text()
    assert re.search(r"All \d+ steps went as expected", transcript)
    ticks = [(at, line) for at, line in received if re.search(r"\| tick \d+ of", line)]
    numbers = [int(line.split("tick ")[1].split()[0]) for _, line in ticks]
    assert numbers == list(range(1, TICKS + 1))
    # The test saw the lines come in one by one, not in a burst at the end.
    assert ticks[-1][0] - ticks[0][0] >= (TICKS - 1) * TICK_SECONDS / 2
    result_line = next(i for i, (_, line) in enumerate(received) if "exit code 0 after" in line)
    assert all(received.index(tick) < result_line for tick in ticks)
    for step in ("box_create", "exec_run", "file_read", "snapshot_create", "snapshot_restore",
                 "box_metrics", "box_remove"):  # fmt: skip
        assert step in transcript


def test_demo_fails_with_the_reason_and_a_non_zero_status(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # nothing listens here
    done = subprocess.run(
        [sys.executable, "-m", "boxlite_mcp", "demo", "--runtime", "rest", "--url", url],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "DEMO FAILED at step 1: runtime_info failed" in done.stdout
    assert "cannot reach the BoxLite server" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
