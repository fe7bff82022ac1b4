"""Many executions at once, in one box and across boxes: every output ends up where it belongs."""

from __future__ import annotations

import anyio
import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.types import BoxOptions

from .support import WORK, BoxMaker, Completed, read_file, run, unique_name, write_file

pytestmark = pytest.mark.anyio

PROGRAM = (
    "import sys, time\n"
    "tag = sys.argv[1]\n"
    "for i in range(200):\n"
    "    sys.stdout.write(f'{tag}:{i}\\n'); sys.stdout.flush()\n"
    "    if i % 50 == 0: time.sleep(0.01)\n"
    "sys.stderr.write(f'{tag}:done\\n')\n"
    "sys.exit(int(tag.rsplit('-', 1)[1]) % 7)\n"
)


def expected(tag: str) -> str:
    return "".join(f"{tag}:{i}\n" for i in range(200))


async def run_many(jobs: list[tuple[Box, str]]) -> dict[str, Completed]:
    results: dict[str, Completed] = {}

    async def one(box: Box, tag: str) -> None:
        results[tag] = await run(box, "python3", "-c", PROGRAM, tag)

    async with anyio.create_task_group() as tg:
        for box, tag in jobs:
            tg.start_soon(one, box, tag)
    return results


def check(results: dict[str, Completed]) -> None:
    for tag, done in results.items():
        assert done.out == expected(tag), f"{tag}: stdout mixed up or lost"
        assert done.err == f"{tag}:done\n", f"{tag}: stderr mixed up or lost"
        assert done.exit_code == int(tag.rsplit("-", 1)[1]) % 7


async def test_twenty_concurrent_execs_in_one_box(make_box: BoxMaker) -> None:
    box = await make_box()
    await box.start()
    results = await run_many([(box, f"solo-{i}") for i in range(20)])
    assert len(results) == 20
    check(results)


async def test_twenty_concurrent_execs_across_five_boxes(make_box: BoxMaker) -> None:
    boxes: list[Box] = []

    async def create(i: int) -> None:
        box = await make_box(BoxOptions(name=unique_name(f"conc{i}")))
        await write_file(box, f"{WORK}/who", f"box-{i}")
        boxes.append(box)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(create, i)
    assert len({b.id for b in boxes}) == 5

    jobs = [(box, f"b{n}x{j}-{n * 4 + j}") for n, box in enumerate(boxes) for j in range(4)]
    results = await run_many(jobs)
    assert len(results) == 20
    check(results)

    # Each box kept its own file: nothing leaked between them.
    for box in boxes:
        who = await read_file(box, f"{WORK}/who")
        assert who is not None and who.startswith("box-")
    assert len({await read_file(box, f"{WORK}/who") for box in boxes}) == 5


async def test_concurrent_lifecycle_operations(make_box: BoxMaker) -> None:
    """Starting, running and stopping several boxes at once leaves each consistent."""
    boxes = [await make_box() for _ in range(4)]

    async def cycle(box: Box, n: int) -> None:
        await box.start()
        await write_file(box, f"{WORK}/n", str(n))
        await box.stop()
        assert await read_file(box, f"{WORK}/n") == str(n)

    async with anyio.create_task_group() as tg:
        for n, box in enumerate(boxes):
            tg.start_soon(cycle, box, n)
