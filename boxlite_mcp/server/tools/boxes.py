"""Box lifecycle tools: create, list, inspect, start, stop, remove, clone, export, import."""

from __future__ import annotations

import os
import secrets

from ...runtime.base import Box
from ...runtime.errors import AlreadyExistsError, BoxliteError, InvalidArgumentError
from ...runtime.types import BoxOptions, ExposedPort, NetworkSpec, VolumeSpec
from ..models import (
    BoxCloneInput,
    BoxCreateInput,
    BoxExportInput,
    BoxExportResult,
    BoxExposeInput,
    BoxExposeResult,
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
from ..services import ToolCall
from .declare import ToolGroup

tools = ToolGroup()


@tools.tool(
    title="Create a box",
    description="""
Create a new, isolated box (a sandbox with its own filesystem, no network unless asked)
and return its id. Use it before running anything: every exec and file tool needs a box.
Give it a `name` to address it by name. The box starts on the first exec_run, so there
is no need to call box_start. It is removed automatically when your session ends or it
sits idle past the TTL, unless `persist` is true; remove it yourself with box_remove
when done. Reuse one box for related steps instead of creating many: there is a limit
per owner (runtime_info shows it).""",
)
async def box_create(call: ToolCall, args: BoxCreateInput) -> BoxResult:
    who = call.who
    fields: dict[str, object] = args.model_dump(
        exclude={"network", "allow_net", "persist", "start", "volumes"}, exclude_none=True
    )
    # allow_net and secrets imply network
    network = args.network or args.allow_net is not None or bool(args.secrets)
    fields["network"] = NetworkSpec(
        mode="enabled" if network else "disabled", allow_net=args.allow_net
    )
    # The registry decides when a box goes; BoxLite servers default auto_remove to
    # true, which would delete a box on box_stop (before a snapshot, say).
    fields["auto_remove"] = False
    if args.volumes:
        fields["volumes"] = [
            VolumeSpec(
                host_path=str(
                    call.host_paths.confine(v.host_path, must_exist=True, purpose="volume")
                ),
                guest_path=v.guest_path,
                read_only=v.read_only,
            )
            for v in args.volumes
        ]
    options = BoxOptions.model_validate(fields)
    entry = await call.registry.create(who.owner, who.session, options, persist=args.persist)
    exposed: list[ExposedPort] = []
    try:
        if args.start:
            await entry.box.start()
        # One rule for ports on every runtime: each is exposed as box_expose would (a
        # BoxLite 0.9 server published them in the create request; this reads them back).
        for port in args.ports or []:
            exposed.append(await entry.box.expose(port))
    except BoxliteError:
        await call.registry.remove(who.owner, entry.id)  # all or nothing
        raise
    view = await call.services.box_view(entry)
    reach = "".join(f" Port {e.port} is reachable from the host at {e.url}." for e in exposed)
    return BoxResult(
        box=view,
        exposed=exposed or None,
        message=f"Created box {entry.label}. Run commands with exec_run(box={view.id!r})." + reach,
    )


@tools.tool(
    title="List your boxes",
    description="""
List the boxes you own: id, name, status, image, and when each will be removed
(idle TTL, persist). Use it to find a box you created earlier or to check what to
clean up. Boxes of other clients are never shown.""",
    read_only=True,
)
async def box_list(call: ToolCall, args: BoxListInput) -> BoxListResult:
    listed = await call.registry.listed(call.who.owner)
    views = [call.services.view(entry, info) for entry, info in listed]
    return BoxListResult(boxes=views, count=len(views), max_boxes=call.settings.max_boxes_per_owner)


@tools.tool(
    title="Show one box",
    description="""
Show one of your boxes by id or name: status, image, resources, resource limits and
how they are enforced, lifetime (persist, idle TTL, seconds until removal if left
idle) and the ids of executions still running in it.""",
    read_only=True,
)
async def box_info(call: ToolCall, args: BoxRefInput) -> BoxInfoResult:
    entry = await call.box(args.box)
    info = await entry.box.info()
    mine = await call.executions.owned_by(call.who.owner)
    running = [r.id for r in mine if r.box_id == entry.id and r.running]
    return BoxInfoResult(
        box=call.services.view(entry, info),
        limits=info.limits,
        running_executions=running,
        network=info.network_status,
    )


@tools.tool(
    title="Expose a box's port to the host",
    description="""
Make a TCP service listening inside a box (a web app, an API, a notebook) reachable
from the server's host and return its URL; give that URL to the user to look at.
Start the service in the box first (exec_start), listening on 127.0.0.1 or 0.0.0.0.
Calling it again for the same port returns the same URL; it ends when the box stops.
A BoxLite 0.9 server (runtime_info) exposes only ports named in box_create's `ports`.""",
    idempotent=True,
)
async def box_expose(call: ToolCall, args: BoxExposeInput) -> BoxExposeResult:
    entry = await call.box(args.box)
    exposed = await entry.box.expose(args.port)
    return BoxExposeResult(
        box_id=entry.id,
        port=exposed.port,
        url=exposed.url,
        message=f"Port {exposed.port} of box {entry.label} is reachable from the server's "
        f"host at {exposed.url} until the box stops.",
    )


@tools.tool(
    title="Start a box",
    description="""
Start a configured or stopped box. Rarely needed: exec_run and exec_start start a box
themselves. Starting a running box does nothing.""",
    idempotent=True,
)
async def box_start(call: ToolCall, args: BoxRefInput) -> BoxResult:
    entry = await call.box(args.box)
    await entry.box.start()
    return BoxResult(
        box=await call.services.box_view(entry), message=f"Box {entry.label} is running."
    )


@tools.tool(
    title="Stop a box",
    description="""
Stop a box: every process in it ends (running executions are killed), its files are
kept. Needed before snapshot_create, snapshot_restore, box_clone and box_export. The
next exec_run starts it again. Stopping a stopped box does nothing.""",
    destructive=True,
    idempotent=True,
)
async def box_stop(call: ToolCall, args: BoxStopInput) -> BoxResult:
    entry = await call.box(args.box)
    await call.services.python.close_box(entry.id)
    await entry.box.stop(args.timeout_seconds)
    return BoxResult(
        box=await call.services.box_view(entry),
        message=f"Box {entry.label} is stopped; its files are kept. exec_run starts it again.",
    )


@tools.tool(
    title="Remove a box",
    description="""
Delete a box and everything in it, for good (processes killed, files and snapshots
gone). Do this when you are done with a box; copy anything you need out first
(file_read, copy_out).""",
    destructive=True,
    idempotent=True,
)
async def box_remove(call: ToolCall, args: BoxRemoveInput) -> BoxRemoveResult:
    entry = await call.registry.remove(call.who.owner, args.box, force=args.force)
    return BoxRemoveResult(
        id=entry.id, name=entry.name, message=f"Box {entry.label} and its files are gone."
    )


@tools.tool(
    title="Clone a box",
    description="""
Make a new box with a copy of a stopped box's files (stop it first with box_stop). The
clone starts stopped, belongs to you and counts against your box limit. Use it to fork
a prepared environment (dependencies installed) for parallel or risky experiments.""",
)
async def box_clone(call: ToolCall, args: BoxCloneInput) -> BoxResult:
    who = call.who
    source = await call.box(args.box)
    entry = await call.registry.add_created(
        who.owner, who.session, args.name, args.persist, source.box.clone
    )
    return BoxResult(
        box=await call.services.box_view(entry),
        message=f"Cloned {source.label} into {entry.label} (stopped; exec_run starts it).",
    )


@tools.tool(
    title="Export a box to an archive",
    description="""
Write a stopped box (stop it first) to a .boxlite archive on the server's host, inside
an allowed directory (runtime_info lists them; none means this tool is disabled).
box_import turns the archive back into a box. Refuses to replace an existing file
unless overwrite is true.""",
)
async def box_export(call: ToolCall, args: BoxExportInput) -> BoxExportResult:
    dest = call.host_paths.confine(args.host_path, purpose="archive path")
    entry = await call.box(args.box)
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
    return BoxExportResult(box_id=entry.id, archive_path=str(dest), size_bytes=dest.stat().st_size)


@tools.tool(
    title="Import a box from an archive",
    description="""
Create a new box from a .boxlite archive (written by box_export) on the server's host,
inside an allowed directory. The box starts stopped and belongs to you.""",
)
async def box_import(call: ToolCall, args: BoxImportInput) -> BoxResult:
    who = call.who
    archive = call.host_paths.confine(args.host_path, must_exist=True, purpose="archive")

    async def make(runtime_name: str) -> Box:
        return await call.services.runtime.import_box(archive, name=runtime_name)

    entry = await call.registry.add_created(who.owner, who.session, args.name, args.persist, make)
    return BoxResult(
        box=await call.services.box_view(entry),
        message=f"Imported {archive.name} as box {entry.label} (stopped; exec_run starts it).",
    )
