"""Boxes: create, list, get, remove, start, stop; snapshots, clone, export,
import; metrics; images and tunnels (documented errors: the runtime contract
has neither).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse

from boxlite_mcp.runtime.errors import (
    ImageError,
    InvalidArgumentError,
    NotFoundError,
    UnsupportedError,
)
from boxlite_mcp.runtime.network.secrets import (
    Secret,
    SecretError,
    parse_specs,
    placeholder,
)
from boxlite_mcp.runtime.types import BoxInfo, BoxOptions, NetworkSpec, SnapshotInfo, VolumeSpec

from .app import Op
from .bodies import file_chunks, receive_to_file, remove_tree
from .ports import parse_specs as parse_port_specs
from .state import Call

#: 0.9's BoxStatus enum has no "failed".
_STATUS_09 = {"failed": "unknown"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _host_cpus() -> int:
    return max(1, min(os.cpu_count() or 1, 32))


def _host_memory_mib() -> int:
    try:
        return max(128, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    except (ValueError, OSError):
        return 1024


def box_body(call: Call, info: BoxInfo) -> dict[str, Any]:
    """A BoxInfo as the documents' Box. Unlimited cpus/memory show the host's."""
    generation = call.generation
    status = str(info.status)
    body: dict[str, Any] = {
        "box_id": call.state.ids.wire(info.id),
        "name": info.name,
        "status": _STATUS_09.get(status, status) if generation == "0.9" else status,
        "created_at": _iso(info.created_at),
        "updated_at": _iso(info.updated_at or info.created_at),
        "pid": info.pid,
        "image": info.image,
        "cpus": info.cpus or _host_cpus(),
        "memory_mib": info.memory_mib or _host_memory_mib(),
        "labels": dict(info.labels or {}),
    }
    if generation == "0.10":
        body.update(auto_pause=0, auto_delete=0, auto_resume=False)
    return body


def _box_response(call: Call, info: BoxInfo, status: int = 200) -> Response:
    body = box_body(call, info)
    headers = {"location": f"{call.root}/boxes/{body['box_id']}"} if status == 201 else None
    return JSONResponse(body, status_code=status, headers=headers)


# -- create -------------------------------------------------------------------------

#: Create fields handed to the runtime unchanged.
_PASSED = (
    "name",
    "rootfs_path",
    "cpus",
    "memory_mib",
    "disk_size_gb",
    "working_dir",
    "env",
    "entrypoint",
    "cmd",
    "user",
    "detach",
)


def _hold_secrets(call: Call, specs: list[dict[str, Any]]) -> list[str]:
    """SecretSpecs handed to the runtime (bwrap: held in memory under a key per box,
    never written to disk, so they do not survive a restart of this server)."""
    held = getattr(getattr(call.runtime, "net_rules", None), "secrets", None)
    if not isinstance(held, dict):
        raise UnsupportedError("secrets are not supported by this server's runtime")
    keys: list[str] = []
    for spec in specs:
        name, value = spec.get("name"), spec.get("value")
        hosts = [h for h in spec.get("hosts") or [] if isinstance(h, str)]
        if not isinstance(name, str) or not isinstance(value, str) or not value:
            raise InvalidArgumentError("each secret needs a name and a non-empty value")
        if spec.get("placeholder") not in (None, placeholder(name)):
            raise UnsupportedError(
                f"secret {name}: only the default placeholder {placeholder(name)} is supported here"
            )
        try:
            parsed = parse_specs([f"{name}:{','.join(hosts)}" if hosts else name])
        except SecretError as exc:
            raise InvalidArgumentError(str(exc)) from None
        key = f"{name}@{secrets.token_hex(6)}"
        held[key] = Secret(name, parsed[name], value)
        keys.append(key)
    return keys


def box_options(call: Call, body: dict[str, Any]) -> BoxOptions:
    """The runtime's BoxOptions for a CreateBoxRequest; refuses what it can't honour."""
    config = call.config
    fields: dict[str, Any] = {k: body[k] for k in _PASSED if body.get(k) is not None}
    image = body.get("image")
    if image is not None and image not in config.default_image_aliases:
        fields["image"] = image
    if body.get("volumes"):
        fields["volumes"] = [VolumeSpec(**v) for v in body["volumes"]]
    if body.get("network") is not None:
        fields["network"] = NetworkSpec(**body["network"])
    if call.generation == "0.9":
        fields["auto_remove"] = body.get("auto_remove", config.default_auto_remove)
    if body.get("ports") and call.generation != "0.9":
        raise UnsupportedError(
            "ports are a 0.9 create field; on 0.10 the tunnel reaches a box's service"
        )
    if body.get("secrets"):
        fields["secrets"] = _hold_secrets(call, body["secrets"])
    if body.get("security") not in (None, "standard"):
        raise UnsupportedError("only the 'standard' security preset is offered here")
    capabilities = (body.get("advanced") or {}).get("capabilities") or {}
    if capabilities.get("add") or capabilities.get("drop"):
        raise UnsupportedError(
            "Linux capability changes are not supported (linux_capabilities_enabled is false)"
        )
    if body.get("auto_delete"):
        raise UnsupportedError("auto_delete is not supported; remove boxes explicitly")
    if body.get("tty"):
        raise UnsupportedError(
            "a TTY for the box's main command is not supported; use exec with tty=true"
        )
    try:
        return BoxOptions(**fields)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"invalid box options: {exc}") from exc


async def create_box(call: Call) -> Response:
    body = call.json()
    options = box_options(call, body)
    specs = parse_port_specs(body["ports"], call.config.host) if body.get("ports") else []
    runtime = call.runtime
    box = await runtime.create(options)
    if specs:
        box_id = box.id
        try:
            await call.state.ports.publish(box_id, lambda: runtime.get(box_id), specs)
        except BaseException:
            await runtime.remove(box_id, force=True)  # all or nothing
            raise
    return _box_response(call, await box.info(), 201)


def _page_token(info: BoxInfo) -> str:
    raw = f"{_iso(info.created_at)}|{info.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after_token(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, box_id = raw.split("|", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(
            "pageToken is not one this server issued; start again without it"
        ) from None
    return created, box_id


async def list_boxes(call: Call) -> Response:
    size = call.query_int("pageSize", 100, 1, 1000)
    status = call.query("status")
    infos = sorted(await call.runtime.list(), key=lambda i: (_iso(i.created_at), i.id))
    if status:
        infos = [i for i in infos if box_body(call, i)["status"] == status]
    token = call.query("pageToken")
    if token:
        after = _after_token(token)
        infos = [i for i in infos if (_iso(i.created_at), i.id) > after]
    page = infos[:size]
    body: dict[str, Any] = {
        "boxes": [box_body(call, i) for i in page],
        "next_page_token": _page_token(page[-1]) if len(infos) > size else None,
    }
    return JSONResponse(body)


async def get_box(call: Call) -> Response:
    return _box_response(call, await (await call.box()).info())


async def box_exists(call: Call) -> Response:
    try:
        await call.box()
    except NotFoundError:
        return Response(status_code=404)
    return Response(status_code=204)


async def remove_box(call: Call) -> Response:
    box_id = (await call.box()).id
    await call.runtime.remove(box_id, force=call.query_bool("force", False))
    call.state.ports.close(box_id)
    return Response(status_code=204)


async def start_box(call: Call) -> Response:
    box = await call.box()
    await box.start()
    return _box_response(call, await box.info())


async def stop_box(call: Call) -> Response:
    timeout = call.json().get("timeout_seconds")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
        raise InvalidArgumentError("timeout_seconds must be a number >= 0")
    box = await call.box()
    before = await box.info()
    await box.stop(timeout_seconds=float(timeout) if timeout is not None else None)
    try:
        after = await box.info()
    except NotFoundError:  # auto_remove: the box is gone once stopped
        after = before.model_copy(update={"status": "stopped", "pid": None})
    return _box_response(call, after)


# -- snapshots, clone, export, import ---------------------------------------------------


def _require(call: Call, capability: str) -> None:
    if not call.config.capabilities()[f"{capability}_enabled"]:
        raise UnsupportedError(
            f"{capability} is disabled on this server (capabilities.{capability}_enabled is false)"
        )


def snapshot_body(call: Call, info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "box_id": call.state.ids.wire(info.box_id),
        "name": info.name,
        "created_at": int(info.created_at.timestamp()),
        "guest_disk_bytes": info.guest_disk_bytes or 0,
        "container_disk_bytes": info.container_disk_bytes or 0,
        "size_bytes": info.size_bytes,
    }


async def create_snapshot(call: Call) -> Response:
    _require(call, "snapshots")
    name = call.json().get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("name is required: a non-empty string")
    info = await (await call.box()).snapshot_create(name)
    return JSONResponse(snapshot_body(call, info), status_code=201)


async def list_snapshots(call: Call) -> Response:
    _require(call, "snapshots")
    infos = await (await call.box()).snapshot_list()
    return JSONResponse({"snapshots": [snapshot_body(call, i) for i in infos]})


async def get_snapshot(call: Call) -> Response:
    _require(call, "snapshots")
    info = await (await call.box()).snapshot_get(call.path("snapshot_name"))
    return JSONResponse(snapshot_body(call, info))


async def remove_snapshot(call: Call) -> Response:
    _require(call, "snapshots")
    await (await call.box()).snapshot_remove(call.path("snapshot_name"))
    return Response(status_code=204)


async def restore_snapshot(call: Call) -> Response:
    _require(call, "snapshots")
    await (await call.box()).snapshot_restore(call.path("snapshot_name"))
    return Response(status_code=204)


async def clone_box(call: Call) -> Response:
    _require(call, "clone")
    name = call.json().get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError("name must be a string")
    clone = await (await call.box()).clone(name)
    return _box_response(call, await clone.info(), 201)


async def export_box(call: Call) -> Response:
    _require(call, "export")
    call.json()  # ExportBoxRequest: no options yet, but must be JSON if present
    box = await call.box()
    workdir = tempfile.mkdtemp(prefix="boxlite-export-")
    try:
        archive = await box.export(Path(workdir))
        size = (await anyio.Path(archive).stat()).st_size
    except BaseException:
        remove_tree(workdir)
        raise
    return StreamingResponse(
        file_chunks(archive),
        media_type="application/octet-stream",
        headers={
            "content-length": str(size),
            "content-disposition": f'attachment; filename="{archive.name}"',
        },
        background=BackgroundTask(remove_tree, workdir),
    )


async def import_box(call: Call) -> Response:
    _require(call, "import")
    name = call.query("name")
    with tempfile.TemporaryDirectory(prefix="boxlite-import-") as workdir:
        archive = Path(workdir) / "import.boxlite"
        if await receive_to_file(call, archive) == 0:
            raise InvalidArgumentError(
                "the request body must be a .boxlite archive "
                "(from the export endpoint); it was empty"
            )
        box = await call.runtime.import_box(archive, name=name)
    return _box_response(call, await box.info(), 201)


# -- metrics ------------------------------------------------------------------------------

_BOOT = (
    "total_create_ms",
    "guest_boot_ms",
    "filesystem_setup_ms",
    "image_prepare_ms",
    "guest_rootfs_ms",
    "box_config_ms",
    "box_spawn_ms",
    "container_init_ms",
)
_BOX_METRICS = (
    "commands_executed_total",
    "exec_errors_total",
    "bytes_sent_total",
    "bytes_received_total",
    "cpu_percent",
    "memory_bytes",
    "network_bytes_sent",
    "network_bytes_received",
    "network_tcp_connections",
    "network_tcp_errors",
)
_RUNTIME_METRICS = (
    "boxes_created_total",
    "boxes_failed_total",
    "boxes_stopped_total",
    "num_running_boxes",
    "total_commands_executed",
    "total_exec_errors",
)


#: Counters both documents type as (non-nullable) integers: left out when the
#: runtime does not count them, rather than reported as a made-up 0.
_NOT_NULLABLE = frozenset(
    {
        "commands_executed_total",
        "exec_errors_total",
        "bytes_sent_total",
        "bytes_received_total",
        *_RUNTIME_METRICS,
    }
)


def _known(metrics: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: metrics[k] for k in names if metrics[k] is not None or k not in _NOT_NULLABLE}


async def box_metrics(call: Call) -> Response:
    metrics = (await (await call.box()).metrics()).model_dump()
    body = _known(metrics, _BOX_METRICS)
    body["boot_timing"] = {k: metrics[k] for k in _BOOT}
    return JSONResponse(body)


async def runtime_metrics(call: Call) -> Response:
    return JSONResponse(_known((await call.runtime.metrics()).model_dump(), _RUNTIME_METRICS))


# -- images and tunnels -------------------------------------------------------------------
# The runtime contract has no image store. A runtime may offer ``pull_image(reference)``
# and ``list_images()`` returning ImageInfo dicts; without them pulls are a 422
# ImageError, the list is empty and lookups are 404.


async def pull_image(call: Call) -> Response:
    reference = call.json().get("reference")
    if not isinstance(reference, str) or not reference:
        raise InvalidArgumentError("reference is required: an image reference")
    pull = getattr(call.runtime, "pull_image", None)
    if pull is None:
        raise ImageError(
            f"cannot pull {reference!r}: this server's runtime has no registry "
            "access (boxes use the runtime's default root filesystem)"
        )
    return JSONResponse(await pull(reference))


async def _images(call: Call) -> list[dict[str, Any]]:
    lister = getattr(call.runtime, "list_images", None)
    return list(await lister()) if lister is not None else []


async def list_images(call: Call) -> Response:
    size = call.query_int("pageSize", 100, 1, 1000)
    images = await _images(call)
    start = 0
    token = call.query("pageToken")
    if token:
        with contextlib.suppress(ValueError):
            start = int(token)
    page = images[start : start + size]
    more = start + size < len(images)
    return JSONResponse({"images": page, "next_page_token": str(start + size) if more else None})


async def _image(call: Call) -> dict[str, Any]:
    image_id = call.path("image_id")
    for image in await _images(call):
        if image.get("id") == image_id:
            return image
    raise NotFoundError(f"image not found: {image_id}")


async def get_image(call: Call) -> Response:
    return JSONResponse(await _image(call))


async def image_exists(call: Call) -> Response:
    try:
        await _image(call)
    except NotFoundError:
        return Response(status_code=404)
    return Response(status_code=204)


async def prepare_tunnel(call: Call) -> Response:
    """0.10's tunnel: the backend's exposed port (a URI on this server's host)."""
    box = await call.box()
    if call.query("port") is None:
        raise InvalidArgumentError("query parameter port is required (the box's TCP port)")
    exposed = await box.expose(call.query_int("port", 0, 1, 65535))
    return JSONResponse({"uri": exposed.url})


OPS = [
    Op("importBox", "POST", "/boxes/import", import_box, stream_body=True),
    Op("createBox", "POST", "/boxes", create_box),
    Op("listBoxes", "GET", "/boxes", list_boxes),
    Op("boxExists", "HEAD", "/boxes/{box_id}", box_exists),
    Op("getBox", "GET", "/boxes/{box_id}", get_box),
    Op("removeBox", "DELETE", "/boxes/{box_id}", remove_box),
    Op("startBox", "POST", "/boxes/{box_id}/start", start_box),
    Op("stopBox", "POST", "/boxes/{box_id}/stop", stop_box),
    Op("createSnapshot", "POST", "/boxes/{box_id}/snapshots", create_snapshot),
    Op("listSnapshots", "GET", "/boxes/{box_id}/snapshots", list_snapshots),
    Op("getSnapshot", "GET", "/boxes/{box_id}/snapshots/{snapshot_name}", get_snapshot),
    Op("removeSnapshot", "DELETE", "/boxes/{box_id}/snapshots/{snapshot_name}", remove_snapshot),
    Op(
        "restoreSnapshot",
        "POST",
        "/boxes/{box_id}/snapshots/{snapshot_name}/restore",
        restore_snapshot,
    ),
    Op("cloneBox", "POST", "/boxes/{box_id}/clone", clone_box),
    Op("exportBox", "POST", "/boxes/{box_id}/export", export_box),
    Op("getBoxMetrics", "GET", "/boxes/{box_id}/metrics", box_metrics),
    Op("getRuntimeMetrics", "GET", "/metrics", runtime_metrics),
    Op("pullImage", "POST", "/images/pull", pull_image),
    Op("listImages", "GET", "/images", list_images),
    Op("imageExists", "HEAD", "/images/{image_id}", image_exists),
    Op("getImage", "GET", "/images/{image_id}", get_image),
    Op(
        "prepareTunnel",
        "POST",
        "/boxes/{box_id}/network/tunnel",
        prepare_tunnel,
        generations=("0.10",),
    ),
]
