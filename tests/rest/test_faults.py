"""End to end under fire: the project's BoxLite server cuts connections at random.

RestRuntime → tools/boxlite_server (strict, random cuts in output streams and in
responses to keyed requests) → bwrap. Every exec must deliver its output byte
for byte, exactly once, and finish; every create must make exactly one box.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.types import BoxOptions, ExecRequest
from tests.harness.rest import rest_stack
from tools.boxlite_server.faults import CutRule

pytestmark = pytest.mark.anyio

LINES = 300
SCRIPT = (
    f'i=0; while [ $i -lt {LINES} ]; do echo "out $i"; echo "err $i" >&2; '
    'i=$((i+1)); done; head -c 300000 /dev/zero | tr "\\0" x'
)
EXPECTED_OUT = "".join(f"out {i}\n" for i in range(LINES)).encode() + b"x" * 300_000
EXPECTED_ERR = "".join(f"err {i}\n" for i in range(LINES)).encode()


@pytest.mark.parametrize("generation", ["0.9", "0.10"])
async def test_random_cuts_lose_nothing_and_never_hang(generation: str, tmp_path: Path) -> None:
    quick = {"backoff_initial": 0.01, "backoff_max": 0.05}
    async with rest_stack(
        tmp_path, generation, client_fields=quick, cut_random=0.2, seed=7, cut_scopes=["stream"]
    ) as (runtime, server):
        # Chosen cuts: the answers to the first two creates and two execs are dropped
        # after the server did the work; the client retries with the same key.
        server.faults.add(CutRule("response", operation="createBox", times=2))
        server.faults.add(CutRule("response", operation="startExecution", times=2))
        names = [f"cut-{i}" for i in range(3)]
        boxes = [await runtime.create(BoxOptions(name=name)) for name in names]
        listed = sorted(info.name or "" for info in await runtime.list())
        assert listed == names, "a retried create made a second box"
        for round_ in range(8):
            box = boxes[round_ % len(boxes)]
            with anyio.fail_after(60):
                execution = await box.exec(ExecRequest(command="/bin/sh", args=["-c", SCRIPT]))
                out, err = bytearray(), bytearray()
                async for chunk in execution.output():
                    (out if chunk.stream == "stdout" else err).extend(chunk.data)
                result = await execution.wait()
            assert result.exit_code == 0
            assert bytes(out) == EXPECTED_OUT, f"round {round_}: stdout differs"
            assert bytes(err) == EXPECTED_ERR, f"round {round_}: stderr differs"
        executed = (await runtime.metrics()).total_commands_executed
        assert executed == 8, "a retried exec ran twice"
        fired = [cut.where for cut in server.faults.fired]
        assert fired.count("response") == 4
        assert fired.count("sse" if generation == "0.9" else "ws") >= 8, fired
