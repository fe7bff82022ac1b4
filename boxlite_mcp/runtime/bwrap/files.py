"""copy_in / copy_out for a running box, with BoxLite's tar semantics.

Both go through the box's root as seen by its PID 1 (``/proc/<pid>/root``), so
they reach everything an exec sees, ``/tmp`` included. Inside the box every
path is resolved by ``boxfs`` (``openat2`` with ``RESOLVE_IN_ROOT``): a symlink
planted by box code cannot lead a copy to a host file. On the host side,
``archive.unpack`` keeps copy_out inside ``host_dest``, all-or-nothing.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from ..errors import (
    BoxliteError,
    InvalidArgumentError,
    NotFoundError,
    not_a_regular_file,
    quote_reference,
    too_big_for_transfer,
)
from ..shared import archive
from . import idmap
from .boxfs import BoxRoot, TreeWriter, normalize


def check_box_path(path: str) -> str:
    """BoxLite's guest rule: a non-empty path without ``..``; returned normalised."""
    if not path or not path.strip():
        raise InvalidArgumentError("the box path is empty; pass an absolute path in the box")
    if "\0" in path:
        raise InvalidArgumentError("the box path contains a NUL byte; remove it")
    if ".." in path.split("/"):
        raise InvalidArgumentError(
            f"box path {path!r} contains '..'; pass an absolute path without '..'"
        )
    return normalize(path)


async def copy_in(init_pid: int, host_src: Path, box_dest: str) -> None:
    dest = check_box_path(box_dest)
    trailing_slash = box_dest.endswith("/")
    spool = await archive.apack(host_src)
    try:
        await anyio.to_thread.run_sync(_copy_in, init_pid, spool, dest, trailing_slash)
    finally:
        spool.close()


def _copy_in(init_pid: int, spool: BinaryIO, dest: str, trailing_slash: bool) -> None:
    members = archive.scan(spool, contained_links=False)
    with BoxRoot.of_pid(init_pid) as root, TreeWriter(root, id_shift=idmap.HOST_BASE) as writer:
        mode = archive.detect_mode(
            dest + ("/" if trailing_slash else ""), root.is_dir(dest), members
        )
        try:
            with tarfile.open(fileobj=spool, mode="r:") as tar:
                for member in tar:
                    name = archive.check_member(member, contained_links=False)
                    if mode is archive.ExtractionMode.FILE_TO_FILE:
                        target = dest
                        base = posixpath.dirname(dest)
                    else:
                        writer.dir_fd(dest)
                        target = posixpath.join(dest, name) if name else dest
                        base = dest
                    data = tar.extractfile(member) if member.isreg() else None
                    writer.write(target, member, data, link_base=base)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            raise InvalidArgumentError(
                f"cannot copy to {dest} in the box: {exc.strerror} ({exc.filename})"
            ) from exc
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot copy to {dest} in the box: {exc.strerror or exc}"
            ) from exc


async def copy_out(
    init_pid: int, box_src: str, host_dest: Path, limits: archive.Limits | None = None
) -> None:
    """Copy a box path to the host; refused while packing once it passes ``limits``."""
    src = check_box_path(box_src)
    limits = limits or archive.Limits()
    spool = await anyio.to_thread.run_sync(_pack_from_box, init_pid, src, limits)
    try:
        await archive.aunpack(spool, host_dest, limits)
    finally:
        spool.close()


async def read_file(init_pid: int, box_src: str, max_bytes: int) -> bytes:
    """One box file's bytes, at most ``max_bytes`` (see ``Box.read_file``)."""
    src = check_box_path(box_src)
    return await anyio.to_thread.run_sync(_read_file, init_pid, src, box_src, max_bytes)


def _read_file(init_pid: int, src: str, asked: str, max_bytes: int) -> bytes:
    """Open in the box (links resolved inside it), check the kind and size, read to the cap.

    The size is checked twice: from ``fstat`` before reading, and by reading at
    most one byte past the cap, since a file may grow while it is read.
    """
    with BoxRoot.of_pid(init_pid) as root:
        try:
            fd = root.open(src, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{quote_reference(asked)} does not exist in the box") from exc
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read {quote_reference(asked)} in the box: {exc.strerror}"
            ) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_a_regular_file(asked, directory=stat.S_ISDIR(st.st_mode))
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise too_big_for_transfer(quote_reference(asked), st.st_size, max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_big_for_transfer(quote_reference(asked), None, max_bytes)
    return data


class _Budget:
    """Bytes and entries packed so far: the unpack caps, enforced before writing."""

    def __init__(self, src: str, limits: archive.Limits) -> None:
        self.src = src
        self.limits = limits
        self.bytes = 0
        self.entries = 0

    def take(self, size: int) -> None:
        self.entries += 1
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise InvalidArgumentError(
                f"{self.src} in the box holds at least {self.bytes} bytes, over the copy "
                f"cap of {self.limits.max_bytes} bytes; copy a smaller path (or "
                "compress it in the box first)"
            )
        if self.entries > self.limits.max_entries:
            raise InvalidArgumentError(
                f"{self.src} in the box holds more than {self.limits.max_entries} "
                "entries, the copy cap; copy a smaller path (or archive it in the box first)"
            )


def _pack_from_box(init_pid: int, src: str, limits: archive.Limits) -> BinaryIO:
    """Archive a box path (a directory as its contents) without following links.

    The caps are checked before each entry is written, so a path bigger than
    the cap (a host-image box's ``/``, a sparse file) never reaches the host.
    """
    budget = _Budget(src, limits)
    spool: BinaryIO = archive.new_spool()  # type: ignore[assignment]
    try:
        with BoxRoot.of_pid(init_pid) as root:
            try:
                fd = root.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError as exc:
                raise NotFoundError(f"{src} does not exist in the box") from exc
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # src itself is a symlink: follow it in the box
                    fd = root.open(src, os.O_RDONLY | os.O_NONBLOCK)
                else:
                    raise InvalidArgumentError(
                        f"cannot read {src} in the box: {exc.strerror}"
                    ) from exc
            with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    _add_dir(tar, fd, "", st.st_dev, budget)
                else:
                    try:
                        _add_entry(tar, fd, posixpath.basename(src) or "file", st, budget)
                    finally:
                        os.close(fd)
    except BoxliteError:
        spool.close()
        raise
    except OSError as exc:
        spool.close()
        raise InvalidArgumentError(f"cannot read {src} in the box: {exc.strerror}") from exc
    spool.seek(0)
    return spool


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = idmap.to_box(st.st_uid), idmap.to_box(st.st_gid)
    return info


def _add_entry(
    tar: tarfile.TarFile, fd: int, name: str, st: os.stat_result, budget: _Budget
) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgumentError(f"{name} is not a regular file or directory")
    budget.take(st.st_size)
    info = _info(name, st)
    info.size = st.st_size
    with os.fdopen(os.dup(fd), "rb") as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, dir_fd: int, prefix: str, dev: int, budget: _Budget) -> None:
    """Add a directory's contents; the fd is consumed. One file system only."""
    try:
        names = sorted(os.listdir(dir_fd))
        for name in names:
            arcname = f"{prefix}{name}"
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                budget.take(0)
                info = _info(arcname, st)
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                budget.take(0)
                info = _info(arcname + "/", st)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                if st.st_dev != dev:
                    continue  # a mount point (proc, a volume): not descended
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                _add_dir(tar, child, arcname + "/", dev, budget)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
                try:
                    _add_entry(tar, fd, arcname, os.fstat(fd), budget)
                finally:
                    os.close(fd)
            # sockets, fifos, devices: skipped
    finally:
        os.close(dir_fd)
