"""Observability tools: per-box metrics, and what runtime this is, why, and its policy."""

from __future__ import annotations

from ..anonymous import SHARED_OWNER_NOTE
from ..models import (
    BoxMetricsResult,
    BoxRefInput,
    Caller,
    Policy,
    RuntimeInfoInput,
    RuntimeInfoResult,
)
from ..runtime.errors import BoxliteError
from ._base import ModelTool, Services, ToolContext, make_tool


def tools(services: Services) -> list[ModelTool]:
    settings = services.settings

    async def box_metrics(args: BoxRefInput, ctx: ToolContext) -> BoxMetricsResult:
        who = services.caller(ctx)
        entry = await services.registry.resolve(who.owner, args.box)
        return BoxMetricsResult(box_id=entry.id, metrics=await entry.box.metrics())

    async def runtime_info(args: RuntimeInfoInput, ctx: ToolContext) -> RuntimeInfoResult:
        who = services.caller(ctx)
        info = await services.runtime.info()
        try:
            metrics = await services.runtime.metrics()
        except BoxliteError:
            metrics = None
        running = [r for r in services.executions.owned_by(who.owner) if r.running]
        return RuntimeInfoResult(
            runtime=info,
            reason=services.runtime_reason,
            policy=Policy(
                allowed_host_paths=[
                    str(root) for root in services.host_paths.for_owner(who.owner).roots
                ],
                max_boxes_per_owner=settings.max_boxes_per_owner,
                max_boxes_total=settings.max_boxes_total,
                box_idle_ttl_seconds=settings.box_idle_ttl_seconds,
                exec_default_timeout_seconds=settings.exec_default_timeout_seconds,
                exec_max_timeout_seconds=settings.exec_max_timeout_seconds,
                result_output_cap_bytes=settings.result_output_cap_bytes,
                stored_output_cap_bytes=settings.stored_output_cap_bytes,
                file_transfer_cap_bytes=settings.file_transfer_cap_bytes,
                network_default="disabled (box_create network=true enables it)",
            ),
            you=Caller(
                owner_kind=who.kind,
                boxes=len(services.registry.owned_by(who.owner)),
                running_executions=len(running),
                # No principal over HTTP: this server has no bearer auth.
                note=SHARED_OWNER_NOTE if who.kind in ("anonymous", "session") else None,
            ),
            metrics=metrics,
        )

    return [
        make_tool(
            name="box_metrics",
            title="Show a box's metrics",
            description="""
Counters and gauges for one box: commands run, exec errors, CPU and memory use, network
bytes, and boot timing (where the runtime measures them; unknown values are null).""",
            input_model=BoxRefInput,
            output_model=BoxMetricsResult,
            handler=box_metrics,
            read_only=True,
        ),
        make_tool(
            name="runtime_info",
            title="Describe the box runtime and its rules",
            description="""
Which runtime runs the boxes and why it was chosen, how strongly it isolates a box
from the host, what it can do (snapshots, clone, export, limits), the rules this
server enforces (box limits, idle TTL, exec timeouts, output caps, allowed host
paths), and your own usage. Call it first when unsure what is possible.""",
            input_model=RuntimeInfoInput,
            output_model=RuntimeInfoResult,
            handler=runtime_info,
            read_only=True,
        ),
    ]
