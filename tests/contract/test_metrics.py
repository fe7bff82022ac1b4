"""Box and runtime metrics: counters move with what happens (monotonic, per box)."""

from __future__ import annotations

import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.errors import BoxliteError
from boxlite_mcp.runtime.types import ExecRequest

from .support import BoxMaker, run, sh

pytestmark = pytest.mark.anyio


async def test_box_counts_commands_and_exec_errors(make_box: BoxMaker) -> None:
    box = await make_box()
    await box.start()
    before = await box.metrics()
    for _ in range(3):
        await run(box, "true")
    await sh(box, "exit 5")  # a failing command is a command, not an exec error
    middle = await box.metrics()
    assert middle.commands_executed_total - before.commands_executed_total == 4
    assert middle.exec_errors_total == before.exec_errors_total

    with pytest.raises(BoxliteError):
        await box.exec(ExecRequest(command="no-such-program-for-metrics"))
    after = await box.metrics()
    assert after.exec_errors_total - middle.exec_errors_total == 1
    assert after.commands_executed_total >= middle.commands_executed_total


async def test_box_metrics_are_per_box(make_box: BoxMaker) -> None:
    busy, idle = await make_box(), await make_box()
    await idle.start()
    idle_before = await idle.metrics()
    for _ in range(2):
        await run(busy, "true")
    assert (await busy.metrics()).commands_executed_total >= 2
    idle_after = await idle.metrics()
    assert idle_after.commands_executed_total == idle_before.commands_executed_total


async def test_running_box_reports_usage(make_box: BoxMaker) -> None:
    box = await make_box()
    await run(box, "true")
    metrics = await box.metrics()
    if metrics.memory_bytes is not None:
        assert metrics.memory_bytes >= 0
    if metrics.cpu_percent is not None:
        assert metrics.cpu_percent >= 0
    for stage in ("total_create_ms", "guest_boot_ms", "filesystem_setup_ms"):
        value = getattr(metrics, stage)
        assert value is None or value >= 0


async def test_runtime_metrics_follow_boxes_and_commands(
    runtime: Runtime, make_box: BoxMaker
) -> None:
    before = await runtime.metrics()
    first, second = await make_box(), await make_box()
    await run(first, "true")
    await run(second, "true")
    await sh(second, "exit 1")
    with pytest.raises(BoxliteError):
        await first.exec(ExecRequest(command="no-such-program-for-runtime-metrics"))
    after = await runtime.metrics()
    assert after.boxes_created_total - before.boxes_created_total >= 2
    assert after.total_commands_executed - before.total_commands_executed >= 3
    assert after.total_exec_errors - before.total_exec_errors >= 1
    assert after.num_running_boxes >= 2

    await first.stop()
    await second.stop()
    stopped = await runtime.metrics()
    assert stopped.num_running_boxes <= after.num_running_boxes - 2
    assert stopped.total_commands_executed >= after.total_commands_executed  # monotonic
