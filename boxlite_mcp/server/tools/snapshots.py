"""Snapshot tools: save a stopped box's disk state, list, restore and remove snapshots."""

from __future__ import annotations

from ...runtime.types import SnapshotInfo
from ..models import (
    BoxRefInput,
    SnapshotInput,
    SnapshotListResult,
    SnapshotRemoveResult,
    SnapshotResult,
    SnapshotView,
)
from ._base import ModelTool, Services, ToolContext, make_tool


def _view(info: SnapshotInfo) -> SnapshotView:
    return SnapshotView(
        name=info.name, id=info.id, created_at=info.created_at, size_bytes=info.size_bytes
    )


def tools(services: Services) -> list[ModelTool]:
    registry = services.registry

    async def snapshot_create(args: SnapshotInput, ctx: ToolContext) -> SnapshotResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        info = await entry.box.snapshot_create(args.name)
        return SnapshotResult(
            box_id=entry.id,
            snapshot=_view(info),
            message=f"Saved snapshot {info.name!r} of {entry.label}. snapshot_restore brings "
            "the box back to this state.",
        )

    async def snapshot_list(args: BoxRefInput, ctx: ToolContext) -> SnapshotListResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        infos = sorted(await entry.box.snapshot_list(), key=lambda s: s.created_at)
        return SnapshotListResult(box_id=entry.id, snapshots=[_view(i) for i in infos])

    async def snapshot_restore(args: SnapshotInput, ctx: ToolContext) -> SnapshotResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        info = await entry.box.snapshot_get(args.name)
        await entry.box.snapshot_restore(args.name)
        return SnapshotResult(
            box_id=entry.id,
            snapshot=_view(info),
            message=f"Restored {entry.label} to snapshot {info.name!r}; later changes are gone.",
        )

    async def snapshot_remove(args: SnapshotInput, ctx: ToolContext) -> SnapshotRemoveResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        await entry.box.snapshot_remove(args.name)
        return SnapshotRemoveResult(
            box_id=entry.id, name=args.name, message=f"Removed snapshot {args.name!r}."
        )

    return [
        make_tool(
            name="snapshot_create",
            title="Snapshot a box",
            description="""
Save the disk state of a stopped box under a name (stop it first with box_stop). Take
one before a risky change (an upgrade, a migration, a destructive script) so that
snapshot_restore can undo it. Names are per box.""",
            input_model=SnapshotInput,
            output_model=SnapshotResult,
            handler=snapshot_create,
        ),
        make_tool(
            name="snapshot_list",
            title="List a box's snapshots",
            description="List the snapshots of one of your boxes, oldest first, with sizes.",
            input_model=BoxRefInput,
            output_model=SnapshotListResult,
            handler=snapshot_list,
            read_only=True,
        ),
        make_tool(
            name="snapshot_restore",
            title="Restore a box to a snapshot",
            description="""
Put a stopped box's disk back to a snapshot's state (stop it first). Every change
made since the snapshot is lost. The snapshot itself is kept for reuse.""",
            input_model=SnapshotInput,
            output_model=SnapshotResult,
            handler=snapshot_restore,
            destructive=True,
            idempotent=True,
        ),
        make_tool(
            name="snapshot_remove",
            title="Delete a snapshot",
            description="Delete one snapshot of a box, for good. The box itself is unchanged.",
            input_model=SnapshotInput,
            output_model=SnapshotRemoveResult,
            handler=snapshot_remove,
            destructive=True,
            idempotent=True,
        ),
    ]
