"""Snapshots, clone, export and import of bwrap boxes: copies of the writable layer.

A box's disk state is its image (read-only, shared) plus its overlay ``upper/``
directory, so all of these are copies of ``upper/`` (``cp -a --reflink=auto``:
it keeps overlayfs whiteouts, xattrs, hard links and ownership, and is nearly
free on file systems with reflinks). They need a stopped box: the upper layer of
a mounted overlay must not be read or written behind the kernel's back.

The ``.boxlite`` archive this runtime writes is an uncompressed tar::

    manifest.json   {"format": "boxlite-mcp-bwrap", "version": 1, "box": {...},
                     "image": {"kind": "host" | "rootfs" | "oci", "display": ...}}
    upper/...       the writable layer, whiteouts in OCI form (".wh.<name>" for a
                    deleted file, ".wh..wh..opq" in a directory that hides the image's)
    image/...       the image's root filesystem, unless the image is the host's root

so the archive is self-contained and readable with ordinary tools. Import
converts the OCI whiteouts back into overlayfs ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import anyio.to_thread

from ..errors import (
    AlreadyExistsError,
    BoxliteError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from ..shared import archive, clones
from ..types import BoxOptions, BoxStatus, SnapshotInfo, check_name
from . import disk, idmap
from .boxfs import BoxRoot, TreeWriter
from .state import BoxRecord, now, write_json_atomic

if TYPE_CHECKING:
    from .runtime import BoxState, BwrapRuntime

FORMAT = "boxlite-mcp-bwrap"
FORMAT_VERSION = 1
OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def _check_stopped(state: BoxState, what: str) -> None:
    state.refresh()
    if state.sandbox is not None:
        raise InvalidStateError(
            f"box {state.record.name or state.record.id} is running; stop it before {what}",
            box=state.record.name or state.record.id,
            required_state="stopped",
        )


async def copy_tree(src: Path, dest: Path) -> None:
    """``cp -a`` (reflinks where possible); dest must not exist."""
    result = await anyio.run_process(
        ["cp", "-a", "--reflink=auto", "--", str(src), str(dest)],
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(dest, ignore_errors=True))
        raise InternalError(
            f"copying the box's disk failed: {result.stderr.decode(errors='replace').strip()}"
        )


async def copy_into(src: Path, dest: Path) -> None:
    """Copy the content of directory ``src`` into the existing directory ``dest``."""
    result = await anyio.run_process(
        ["cp", "-a", "--reflink=auto", "--", f"{src}/.", f"{dest}/"],
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()
        if "No space left" in error:
            raise InvalidArgumentError(
                f"the box's disk is too small for this copy ({error.splitlines()[-1]}); "
                "create the box with a larger disk_size_gb"
            )
        raise InternalError(f"copying the box's disk failed: {error}")


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


# -- snapshots -----------------------------------------------------------------


def _snap_dir(rt: BwrapRuntime, state: BoxState) -> Path:
    return rt.store.box_dir(state.record.id) / "snapshots"


def _load(path: Path) -> SnapshotInfo:
    return SnapshotInfo.model_validate_json((path / "snapshot.json").read_bytes())


def list_(rt: BwrapRuntime, state: BoxState) -> list[SnapshotInfo]:
    found: list[SnapshotInfo] = []
    root = _snap_dir(rt, state)
    if root.is_dir():
        for d in root.iterdir():
            if (d / "snapshot.json").is_file():
                found.append(_load(d))
    return sorted(found, key=lambda s: (s.created_at, s.name))


def get(rt: BwrapRuntime, state: BoxState, name: str) -> SnapshotInfo:
    path = _snap_dir(rt, state) / name
    if not name or "/" in name or not (path / "snapshot.json").is_file():
        existing = ", ".join(s.name for s in list_(rt, state)) or "none"
        raise NotFoundError(
            f"box {state.record.name or state.record.id} has no snapshot {name!r} "
            f"(its snapshots: {existing})"
        )
    return _load(path)


async def create(rt: BwrapRuntime, state: BoxState, name: str) -> SnapshotInfo:
    check_name(name, "snapshot")
    _check_stopped(state, "taking a snapshot")
    target = _snap_dir(rt, state) / name
    if target.exists():
        raise AlreadyExistsError(
            f"box {state.record.name or state.record.id} already has a snapshot {name!r}; "
            "pick another name or remove it first"
        )
    target.parent.mkdir(exist_ok=True)
    staging = target.parent / f".{name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        layer = await rt.layer_dir(state.record.id)
        await copy_tree(layer / "upper", staging / "upper")
        size = await anyio.to_thread.run_sync(_tree_size, staging / "upper")
        info = SnapshotInfo(
            id=f"snap-{secrets.token_hex(6)}",
            box_id=state.record.id,
            name=name,
            created_at=now(),
            size_bytes=size,
            container_disk_bytes=size,
        )
        write_json_atomic(staging / "snapshot.json", info.model_dump(mode="json"))
        os.rename(staging, target)
    except BaseException:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(staging, ignore_errors=True))
        raise
    return info


async def remove(rt: BwrapRuntime, state: BoxState, name: str) -> None:
    get(rt, state, name)
    target = _snap_dir(rt, state) / name
    trash = target.parent / f".{name}.{secrets.token_hex(4)}.removed"
    os.rename(target, trash)
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(trash, ignore_errors=True))


async def restore(rt: BwrapRuntime, state: BoxState, name: str) -> None:
    get(rt, state, name)
    _check_stopped(state, "restoring a snapshot")
    source = _snap_dir(rt, state) / name / "upper"
    box_dir = rt.store.box_dir(state.record.id)
    if not disk.has_disk(box_dir):
        await replace_upper(box_dir, source)
        return
    # Onto a fresh disk of the same size, swapped in at the end: restoring in place
    # would need room for the old and the new layer at once.
    image = disk.image_path(box_dir)
    size_gb = max(1, os.stat(image).st_size // disk.GIB)
    fresh = box_dir / f"disk.{secrets.token_hex(4)}.new"
    fd = -1
    try:
        await anyio.to_thread.run_sync(
            disk.sparse_copy, disk.template(rt.disk_templates, size_gb), fresh
        )
        fd = await anyio.to_thread.run_sync(disk.open_disk, fresh)
        await copy_into(source, disk.layer_path(fd) / "upper")
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fresh)
        raise
    rt.set_disk(state.record.id, fd)
    os.replace(fresh, image)


async def replace_upper(box_dir: Path, source: Path) -> None:
    """Make ``box_dir/upper`` a copy of ``source``, swapping it in at the end."""
    fresh = box_dir / f"upper.{secrets.token_hex(4)}.new"
    await copy_tree(source, fresh)
    old = box_dir / f"upper.{secrets.token_hex(4)}.old"
    os.rename(box_dir / "upper", old)
    os.rename(fresh, box_dir / "upper")
    work = box_dir / "work"
    await anyio.to_thread.run_sync(lambda: _reset_dir(work))
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(old, ignore_errors=True))


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _reset_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(exist_ok=True)


# -- clone ---------------------------------------------------------------------


def _check_new_names(rt: BwrapRuntime, names: list[str | None]) -> None:
    seen: set[str] = set()
    for name in names:
        if name is None:
            continue
        check_name(name, "box")
        if name in seen:
            raise InvalidArgumentError(f"name {name!r} is given twice; names must be unique")
        seen.add(name)
        for other in rt._states.values():
            if other.record.name == name:
                raise AlreadyExistsError(
                    f"a box named {name!r} already exists (id {other.record.id}); pick another name"
                )


def _new_record(source: BoxRecord, box_id: str, name: str | None) -> BoxRecord:
    options = source.options.model_copy(update={"name": name})
    record = BoxRecord(
        id=box_id,
        name=name,
        options=options,
        image=source.image,
        lower=source.lower,
        status=BoxStatus.STOPPED,
        limits=source.limits.model_copy(),
        cgroup_mode=source.cgroup_mode,
    )
    from .limits import BoxCgroup

    record.cgroup_dirs = BoxCgroup.plan(box_id, source.cgroup_mode).dirs
    return record


async def clone(
    rt: BwrapRuntime, state: BoxState, count: int, names: list[str] | None
) -> list[str]:
    wanted = clones.check_batch(count, names)
    _check_stopped(state, "cloning it")
    source_dir = rt.store.box_dir(state.record.id)

    async def remove(box_id: str) -> None:
        rt._states.pop(box_id, None)
        rt.close_disk(box_id)
        await anyio.to_thread.run_sync(_rmtree, rt.store.box_dir(box_id))

    async def make(name: str | None) -> str:
        box_id = secrets.token_hex(6)
        box_dir = rt.store.box_dir(box_id)
        box_dir.mkdir()
        try:
            for sub in ("merged", "snapshots"):
                (box_dir / sub).mkdir()
            source_layer = await rt.layer_dir(state.record.id)
            if disk.has_disk(source_dir):
                size_gb = max(1, os.stat(disk.image_path(source_dir)).st_size // disk.GIB)
                layer = await rt.new_layer(box_id, size_gb)
                await copy_into(source_layer / "upper", layer / "upper")
            else:
                (box_dir / "work").mkdir()
                await copy_tree(source_layer / "upper", box_dir / "upper")
            record = _new_record(state.record, box_id, name)
            if Path(record.lower) == source_dir / "image":  # an imported image
                await copy_tree(source_dir / "image", box_dir / "image")
                record.lower = str(box_dir / "image")
            record.boot = state.record.boot.model_copy()
            rt.store.save(record)
            rt._add(record)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await remove(box_id)
            raise
        return box_id

    async with rt._create_lock:
        _check_new_names(rt, wanted)
        return await clones.clone_all(count, names, make, remove)


# -- export ----------------------------------------------------------------------


async def export(rt: BwrapRuntime, state: BoxState, dest: Path) -> Path:
    _check_stopped(state, "exporting it")
    record = state.record
    if await anyio.Path(dest).is_dir():
        dest = dest / f"{record.name or record.id}.boxlite"
    if not await anyio.Path(dest.parent).is_dir():
        raise NotFoundError(f"{dest.parent} does not exist; export to an existing directory")
    tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.tmp"
    try:
        layer = await rt.layer_dir(record.id)
        await anyio.to_thread.run_sync(_write_export, record, layer / "upper", tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def _write_export(record: BoxRecord, upper: Path, out: Path) -> None:
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "box": {
            "id": record.id,
            "name": record.name,
            "options": record.options.model_dump(mode="json", exclude_unset=True),
            "limits": record.limits.model_dump(mode="json"),
            "created_at": record.created_at.isoformat(),
        },
        "image": {"kind": "host" if record.lower == "/" else "rootfs", "display": record.image},
    }
    data = json.dumps(manifest, indent=1).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        info.mtime = int(now().timestamp())
        tar.addfile(info, io.BytesIO(data))
        _add_layer(tar, upper, "upper")
        if record.lower != "/":
            tar.add(record.lower, arcname="image", recursive=True)


def _add_layer(tar: tarfile.TarFile, root: Path, prefix: str) -> None:
    """Add an overlay upper dir, converting whiteouts to their OCI form."""
    to_box = idmap.tarinfo_to_box  # the archive holds box ids, portable between hosts
    tar.add(root, arcname=prefix, recursive=False, filter=to_box)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = prefix if rel == "." else f"{prefix}/{rel}"
        if rel != "." and _is_opaque(dirpath):
            _add_marker(tar, f"{base}/{OPAQUE_MARKER}")
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                _add_marker(tar, f"{base}/{WHITEOUT_PREFIX}{name}")
            else:
                tar.add(path, arcname=f"{base}/{name}", recursive=False, filter=to_box)


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _add_marker(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = 0
    tar.addfile(info)


# -- import ----------------------------------------------------------------------


async def import_box(rt: BwrapRuntime, path: Path, name: str | None) -> str:
    if not await anyio.Path(path).is_file():
        raise NotFoundError(f"{path} does not exist; pass the path of a .boxlite archive")
    if name is not None:
        check_name(name, "box")
    async with rt._create_lock:
        _check_new_names(rt, [name])
        box_id = secrets.token_hex(6)
        box_dir = rt.store.box_dir(box_id)
        try:
            manifest = await anyio.to_thread.run_sync(_read_manifest, path)
            box = manifest["box"]
            options = BoxOptions.model_validate({**box.get("options", {}), "name": name})
            box_dir.mkdir()
            for sub in ("merged", "snapshots", "image"):
                (box_dir / sub).mkdir()
            layer = await rt.new_layer(box_id, rt.disk_size(options))
            await anyio.to_thread.run_sync(_unpack, path, layer / "upper", box_dir / "image")
            image_kind = manifest["image"]["kind"]
            lower = "/" if image_kind == "host" else str(box_dir / "image")
            record = BoxRecord(
                id=box_id,
                name=name,
                options=options,
                image=manifest["image"].get("display") or "host",
                lower=lower,
                status=BoxStatus.STOPPED,
                cgroup_mode=rt.cgroup_mode,
            )
            from .limits import BoxCgroup

            record.limits = record.limits.model_validate(box.get("limits") or {})
            record.cgroup_dirs = BoxCgroup.plan(box_id, rt.cgroup_mode).dirs
            rt.store.save(record)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                rt.close_disk(box_id)
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(box_dir, ignore_errors=True))
            if isinstance(exc, (BoxliteError, anyio.get_cancelled_exc_class())):
                raise
            if isinstance(exc, (tarfile.TarError, ValueError, KeyError, TypeError, OSError)):
                raise InvalidArgumentError(
                    f"{path} is not a .boxlite archive this runtime can import ({exc})"
                ) from exc
            raise
        rt._add(record)
    return box_id


def _read_manifest(path: Path) -> dict[str, Any]:
    """The archive's manifest, checked (nothing is unpacked yet)."""
    with open(path, "rb") as f:
        try:
            with tarfile.open(fileobj=f, mode="r:") as tar:
                first = tar.next()
                if first is None or first.name != "manifest.json" or not first.isreg():
                    raise InvalidArgumentError(
                        f"{path} is not a .boxlite archive written by this runtime "
                        "(it does not start with manifest.json)"
                    )
                raw = tar.extractfile(first)
                assert raw is not None
                manifest: dict[str, Any] = json.loads(raw.read(1024 * 1024))
        except tarfile.TarError as exc:
            raise InvalidArgumentError(f"{path} is not a .boxlite archive: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise InvalidArgumentError(
                f"{path} is a {manifest.get('format')!r} archive, version "
                f"{manifest.get('version')!r}; this runtime imports {FORMAT!r} version "
                f"{FORMAT_VERSION}"
            )
    return manifest


def _unpack(path: Path, upper: Path, image: Path) -> None:
    with open(path, "rb") as f:
        _unpack_layers(f, upper, image)


def _unpack_layers(f: BinaryIO, upper_dir: Path, image_dir: Path) -> None:
    upper_fd = os.open(upper_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    image_fd = os.open(image_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    with (
        TreeWriter(BoxRoot(upper_fd), owners=True, id_shift=idmap.HOST_BASE) as upper,
        TreeWriter(BoxRoot(image_fd), owners=True) as image,
        tarfile.open(fileobj=f, mode="r:") as tar,
    ):
        try:
            for member in tar:
                name = archive.check_member(member, contained_links=False)
                top, _, rest = name.partition("/")
                if top == "manifest.json":
                    continue
                if top not in ("upper", "image"):
                    raise InvalidArgumentError(f"unexpected entry {member.name!r} in the archive")
                writer = upper if top == "upper" else image
                path = "/" + rest
                base = os.path.basename(rest)
                if top == "upper" and base == OPAQUE_MARKER:
                    fd = writer.dir_fd(os.path.dirname(path))
                    os.setxattr(fd, OPAQUE_XATTR, b"y")
                    continue
                if top == "upper" and base.startswith(WHITEOUT_PREFIX):
                    parent = os.path.dirname(path)
                    fd = writer.dir_fd(parent)
                    os.mknod(
                        base[len(WHITEOUT_PREFIX) :],
                        stat.S_IFCHR | 0o000,
                        os.makedev(0, 0),
                        dir_fd=fd,
                    )
                    continue
                if member.islnk():
                    member.linkname = member.linkname.partition("/")[2]
                data = tar.extractfile(member) if member.isreg() else None
                writer.write(path, member, data, link_base="/")
        finally:
            os.close(upper_fd)
            os.close(image_fd)
