"""Observability tools: per-box metrics, and what runtime this is, why, and its policy."""

from __future__ import annotations

from ...runtime.errors import BoxliteError
from ...sessions.owners import SHARED_OWNER_NOTE
from ..models import (
    BoxMetricsResult,
    BoxRefInput,
    Caller,
    Policy,
    RuntimeInfoInput,
    RuntimeInfoResult,
)
from ..services import ToolCall
from .declare import ToolGroup

tools = ToolGroup()


@tools.tool(
    title="Show a box's metrics",
    description="""
Counters and gauges for one box: commands run, exec errors, CPU and memory use, network
bytes, and boot timing (where the runtime measures them; unknown values are null).""",
    read_only=True,
)
async def box_metrics(call: ToolCall, args: BoxRefInput) -> BoxMetricsResult:
    entry = await call.box(args.box)
    return BoxMetricsResult(box_id=entry.id, metrics=await entry.box.metrics())


@tools.tool(
    title="Describe the box runtime and its rules",
    description="""
Which runtime runs the boxes and why it was chosen, how strongly it isolates a box
from the host, what it can do (snapshots, clone, export, limits), the rules this
server enforces (box limits, idle TTL, exec timeouts, output caps, allowed host
paths), and your own usage. Call it first when unsure what is possible.""",
    read_only=True,
)
async def runtime_info(call: ToolCall, args: RuntimeInfoInput) -> RuntimeInfoResult:
    services, settings, who = call.services, call.settings, call.who
    info = await services.runtime.info()
    try:
        metrics = await services.runtime.metrics()
    except BoxliteError:
        metrics = None
    running = [r for r in await services.executions.owned_by(who.owner) if r.running]
    return RuntimeInfoResult(
        runtime=info,
        reason=services.runtime_reason,
        policy=Policy(
            allowed_host_paths=[str(root) for root in call.host_paths.roots],
            max_boxes_per_owner=settings.max_boxes_per_owner,
            max_boxes_total=settings.max_boxes_total,
            box_idle_ttl_seconds=settings.box_idle_ttl_seconds,
            exec_default_timeout_seconds=settings.exec_default_timeout_seconds,
            exec_max_timeout_seconds=settings.exec_max_timeout_seconds,
            exec_return_after_seconds=settings.exec_return_after_seconds,
            result_output_cap_bytes=settings.result_output_cap_bytes,
            stored_output_cap_bytes=settings.stored_output_cap_bytes,
            file_transfer_cap_bytes=settings.file_transfer_cap_bytes,
            network_default="disabled (box_create network=true enables it)",
        ),
        you=Caller(
            owner_kind=who.kind,
            boxes=len(await services.registry.records(who.owner)),
            running_executions=len(running),
            # No principal over HTTP: this server has no bearer auth.
            note=SHARED_OWNER_NOTE if who.kind in ("anonymous", "session") else None,
        ),
        metrics=metrics,
    )
