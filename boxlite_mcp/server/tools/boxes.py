"""Box lifecycle tools: create, list, inspect, start, stop, remove, clone, export, import."""

from __future__ import annotations

import os
import secrets

from ...runtime.errors import AlreadyExistsError, BoxliteError, InvalidArgumentError
from ...runtime.types import BoxOptions, NetworkSpec, VolumeSpec
from ..models import (
    BoxCloneInput,
    BoxCreateInput,
    BoxExportInput,
    BoxExportResult,
    BoxImportInput,
    BoxInfoResult,
    BoxListInput,
    BoxListResult,
    BoxRefInput,
    BoxRemoveInput,
    BoxRemoveResult,
    BoxResult,
    BoxStopInput,
)
from ._base import ModelTool, Services, ToolContext, make_tool


def tools(services: Services) -> list[ModelTool]:
    registry = services.registry

    async def box_create(args: BoxCreateInput, ctx: ToolContext) -> BoxResult:
        who = services.caller(ctx)
        fields: dict[str, object] = args.model_dump(
            exclude={"network", "persist", "start", "volumes"}, exclude_none=True
        )
        fields["network"] = NetworkSpec(mode="enabled" if args.network else "disabled")
        # The registry decides when a box goes; BoxLite servers default auto_remove to
        # true, which would delete a box on box_stop (before a snapshot, say).
        fields["auto_remove"] = False
        if args.volumes:
            fields["volumes"] = [
                VolumeSpec(
                    host_path=str(
                        services.host_paths.for_owner(who.owner).confine(
                            v.host_path, must_exist=True, purpose="volume"
                        )
                    ),
                    guest_path=v.guest_path,
                    read_only=v.read_only,
                )
                for v in args.volumes
            ]
        options = BoxOptions.model_validate(fields)
        entry = await registry.create(who.owner, who.session, options, persist=args.persist)
        if args.start:
            try:
                await entry.box.start()
            except BoxliteError:
                await registry.remove(who.owner, entry.id)  # all or nothing
                raise
        view = await services.box_view(entry)
        return BoxResult(
            box=view,
            message=f"Created box {entry.label}. Run commands with exec_run(box={view.id!r}).",
        )

    async def box_list(args: BoxListInput, ctx: ToolContext) -> BoxListResult:
        who = services.caller(ctx)
        views = [services.view(entry, info) for entry, info in await registry.listed(who.owner)]
        return BoxListResult(
            boxes=views, count=len(views), max_boxes=services.settings.max_boxes_per_owner
        )

    async def box_info(args: BoxRefInput, ctx: ToolContext) -> BoxInfoResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        info = await entry.box.info()
        running = [
            r.id
            for r in services.executions.owned_by(who.owner)
            if r.box_id == entry.id and r.running
        ]
        return BoxInfoResult(
            box=services.view(entry, info), limits=info.limits, running_executions=running
        )

    async def box_start(args: BoxRefInput, ctx: ToolContext) -> BoxResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        await entry.box.start()
        return BoxResult(
            box=await services.box_view(entry), message=f"Box {entry.label} is running."
        )

    async def box_stop(args: BoxStopInput, ctx: ToolContext) -> BoxResult:
        who = services.caller(ctx)
        entry = await registry.resolve(who.owner, args.box)
        await entry.box.stop(args.timeout_seconds)
        return BoxResult(
            box=await services.box_view(entry),
            message=f"Box {entry.label} is stopped; its files are kept. exec_run starts it again.",
        )

    async def box_remove(args: BoxRemoveInput, ctx: ToolContext) -> BoxRemoveResult:
        who = services.caller(ctx)
        entry = await registry.remove(who.owner, args.box, force=args.force)
        return BoxRemoveResult(
            id=entry.id, name=entry.name, message=f"Box {entry.label} and its files are gone."
        )

    async def box_clone(args: BoxCloneInput, ctx: ToolContext) -> BoxResult:
        who = services.caller(ctx)
        source = await registry.resolve(who.owner, args.box)
        entry = await registry.add_created(
            who.owner, who.session, args.name, args.persist, source.box.clone
        )
        return BoxResult(
            box=await services.box_view(entry),
            message=f"Cloned {source.label} into {entry.label} (stopped; exec_run starts it).",
        )

    async def box_export(args: BoxExportInput, ctx: ToolContext) -> BoxExportResult:
        who = services.caller(ctx)
        dest = services.host_paths.for_owner(who.owner).confine(
            args.host_path, purpose="archive path"
        )
        entry = await registry.resolve(who.owner, args.box)
        if dest.is_dir():
            dest = dest / f"{entry.name or entry.id}.boxlite"
        if dest.exists() and not args.overwrite:
            raise AlreadyExistsError(
                f"{str(dest)!r} exists. Pass overwrite=true to replace it, or pick another path."
            )
        if not dest.parent.is_dir():
            raise InvalidArgumentError(f"The directory {str(dest.parent)!r} does not exist.")
        partial = dest.with_name(f".{dest.name}.partial-{secrets.token_hex(4)}")
        try:
            written = await entry.box.export(partial)
            os.replace(written, dest)
        finally:
            if partial.exists():
                partial.unlink()
        return BoxExportResult(
            box_id=entry.id, archive_path=str(dest), size_bytes=dest.stat().st_size
        )

    async def box_import(args: BoxImportInput, ctx: ToolContext) -> BoxResult:
        who = services.caller(ctx)
        archive = services.host_paths.for_owner(who.owner).confine(
            args.host_path, must_exist=True, purpose="archive"
        )

        async def make(runtime_name: str):  # type: ignore[no-untyped-def]
            return await services.runtime.import_box(archive, name=runtime_name)

        entry = await registry.add_created(who.owner, who.session, args.name, args.persist, make)
        return BoxResult(
            box=await services.box_view(entry),
            message=f"Imported {archive.name} as box {entry.label} (stopped; exec_run starts it).",
        )

    return [
        make_tool(
            name="box_create",
            title="Create a box",
            description="""
Create a new, isolated box (a sandbox with its own filesystem, no network unless asked)
and return its id. Use it before running anything: every exec and file tool needs a box.
Give it a `name` to address it by name. The box starts on the first exec_run, so there
is no need to call box_start. It is removed automatically when your session ends or it
sits idle past the TTL, unless `persist` is true; remove it yourself with box_remove
when done. Reuse one box for related steps instead of creating many: there is a limit
per owner (runtime_info shows it).""",
            input_model=BoxCreateInput,
            output_model=BoxResult,
            handler=box_create,
        ),
        make_tool(
            name="box_list",
            title="List your boxes",
            description="""
List the boxes you own: id, name, status, image, and when each will be removed
(idle TTL, persist). Use it to find a box you created earlier or to check what to
clean up. Boxes of other clients are never shown.""",
            input_model=BoxListInput,
            output_model=BoxListResult,
            handler=box_list,
            read_only=True,
        ),
        make_tool(
            name="box_info",
            title="Show one box",
            description="""
Show one of your boxes by id or name: status, image, resources, resource limits and
how they are enforced, lifetime (persist, idle TTL, seconds until removal if left
idle) and the ids of executions still running in it.""",
            input_model=BoxRefInput,
            output_model=BoxInfoResult,
            handler=box_info,
            read_only=True,
        ),
        make_tool(
            name="box_start",
            title="Start a box",
            description="""
Start a configured or stopped box. Rarely needed: exec_run and exec_start start a box
themselves. Starting a running box does nothing.""",
            input_model=BoxRefInput,
            output_model=BoxResult,
            handler=box_start,
            idempotent=True,
        ),
        make_tool(
            name="box_stop",
            title="Stop a box",
            description="""
Stop a box: every process in it ends (running executions are killed), its files are
kept. Needed before snapshot_create, snapshot_restore, box_clone and box_export. The
next exec_run starts it again. Stopping a stopped box does nothing.""",
            input_model=BoxStopInput,
            output_model=BoxResult,
            handler=box_stop,
            destructive=True,
            idempotent=True,
        ),
        make_tool(
            name="box_remove",
            title="Remove a box",
            description="""
Delete a box and everything in it, for good (processes killed, files and snapshots
gone). Do this when you are done with a box; copy anything you need out first
(file_read, copy_out).""",
            input_model=BoxRemoveInput,
            output_model=BoxRemoveResult,
            handler=box_remove,
            destructive=True,
            idempotent=True,
        ),
        make_tool(
            name="box_clone",
            title="Clone a box",
            description="""
Make a new box with a copy of a stopped box's files (stop it first with box_stop). The
clone starts stopped, belongs to you and counts against your box limit. Use it to fork
a prepared environment (dependencies installed) for parallel or risky experiments.""",
            input_model=BoxCloneInput,
            output_model=BoxResult,
            handler=box_clone,
        ),
        make_tool(
            name="box_export",
            title="Export a box to an archive",
            description="""
Write a stopped box (stop it first) to a .boxlite archive on the server's host, inside
an allowed directory (runtime_info lists them; none means this tool is disabled).
box_import turns the archive back into a box. Refuses to replace an existing file
unless overwrite is true.""",
            input_model=BoxExportInput,
            output_model=BoxExportResult,
            handler=box_export,
        ),
        make_tool(
            name="box_import",
            title="Import a box from an archive",
            description="""
Create a new box from a .boxlite archive (written by box_export) on the server's host,
inside an allowed directory. The box starts stopped and belongs to you.""",
            input_model=BoxImportInput,
            output_model=BoxResult,
            handler=box_import,
        ),
    ]
