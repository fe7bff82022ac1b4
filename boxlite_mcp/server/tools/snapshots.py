"""Snapshot tools: save a stopped box's disk state, list, restore and remove snapshots."""

from __future__ import annotations

from ..models import (
    BoxRefInput,
    SnapshotInput,
    SnapshotListResult,
    SnapshotRemoveResult,
    SnapshotResult,
    SnapshotView,
)
from ..services import ToolCall
from .declare import ToolGroup

tools = ToolGroup()


@tools.tool(
    title="Snapshot a box",
    description="""
Save the disk state of a stopped box under a name (stop it first with box_stop). Take
one before a risky change (an upgrade, a migration, a destructive script) so that
snapshot_restore can undo it. Names are per box.""",
)
async def snapshot_create(call: ToolCall, args: SnapshotInput) -> SnapshotResult:
    entry = await call.box(args.box)
    info = await entry.box.snapshot_create(args.name)
    return SnapshotResult(
        box_id=entry.id,
        snapshot=SnapshotView.of(info),
        message=f"Saved snapshot {info.name!r} of {entry.label}. snapshot_restore brings "
        "the box back to this state.",
    )


@tools.tool(
    title="List a box's snapshots",
    description="List the snapshots of one of your boxes, oldest first, with sizes.",
    read_only=True,
)
async def snapshot_list(call: ToolCall, args: BoxRefInput) -> SnapshotListResult:
    entry = await call.box(args.box)
    infos = sorted(await entry.box.snapshot_list(), key=lambda s: s.created_at)
    return SnapshotListResult(box_id=entry.id, snapshots=[SnapshotView.of(i) for i in infos])


@tools.tool(
    title="Restore a box to a snapshot",
    description="""
Put a stopped box's disk back to a snapshot's state (stop it first). Every change
made since the snapshot is lost. The snapshot itself is kept for reuse.""",
    destructive=True,
    idempotent=True,
)
async def snapshot_restore(call: ToolCall, args: SnapshotInput) -> SnapshotResult:
    entry = await call.box(args.box)
    info = await entry.box.snapshot_get(args.name)
    await entry.box.snapshot_restore(args.name)
    return SnapshotResult(
        box_id=entry.id,
        snapshot=SnapshotView.of(info),
        message=f"Restored {entry.label} to snapshot {info.name!r}; later changes are gone.",
    )


@tools.tool(
    title="Delete a snapshot",
    description="Delete one snapshot of a box, for good. The box itself is unchanged.",
    destructive=True,
    idempotent=True,
)
async def snapshot_remove(call: ToolCall, args: SnapshotInput) -> SnapshotRemoveResult:
    entry = await call.box(args.box)
    await entry.box.snapshot_remove(args.name)
    return SnapshotRemoveResult(
        box_id=entry.id, name=args.name, message=f"Removed snapshot {args.name!r}."
    )
