"""Paths inside a running box, resolved safely from the host.

Box code can plant symlinks (``/etc/x -> /etc/shadow``, ``/a -> ../../..``). The
host reaches the box's files through ``/proc/<pid>/root`` and resolves every
path with ``openat2(RESOLVE_IN_ROOT)``: absolute links and ``..`` are resolved
against the box's root, never the host's; magic links are refused. Each file is
then created or opened relative to a resolved directory fd with
``O_NOFOLLOW``, so no step can be redirected outside the box.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import secrets
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from ..errors import InternalError
from .syscall import syscall, write_all

_SYS_OPENAT2 = 437  # the same number on every architecture (added in 5.6)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(
    dirfd: int,
    path: str,
    flags: int,
    mode: int = 0,
    resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
) -> int:
    """``openat2(2)``; raises OSError like ``os.open``."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise InternalError("the kernel lacks openat2 (Linux >= 5.6 is needed)")
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def normalize(path: str) -> str:
    """A box path made absolute and normalised (``..`` cannot climb above ``/``)."""
    if not path.startswith("/"):
        path = "/" + path
    norm = posixpath.normpath(path)
    return "/" if norm in ("", "//") else norm.replace("//", "/")


class BoxRoot:
    """An open handle on a box's root directory."""

    def __init__(self, root_fd: int) -> None:
        self.fd = root_fd

    @classmethod
    def of_pid(cls, pid: int) -> BoxRoot:
        return cls(os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BoxRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rel(self, path: str) -> str:
        rel = normalize(path).lstrip("/")
        return rel or "."

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        """Open a path in the box, all of it resolved within the box."""
        return openat2(self.fd, self._rel(path), flags, mode)

    def open_dir(self, path: str) -> int:
        return self.open(path, os.O_RDONLY | os.O_DIRECTORY)

    @contextmanager
    def dir(self, path: str) -> Iterator[int]:
        fd = self.open_dir(path)
        try:
            yield fd
        finally:
            os.close(fd)

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of the last component (its parent resolved in the box); None if absent."""
        norm = normalize(path)
        if norm == "/":
            return os.stat(self.fd)
        parent, name = posixpath.split(norm)
        try:
            with self.dir(parent) as pfd:
                return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def stat(self, path: str) -> os.stat_result | None:
        """stat following symlinks within the box; None if absent."""
        try:
            fd = self.open(path, os.O_PATH)
        except (FileNotFoundError, NotADirectoryError, OSError):
            return None
        try:
            return os.stat(fd)
        finally:
            os.close(fd)

    def is_dir(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def read_file(self, path: str, limit: int = 1024 * 1024) -> bytes | None:
        """A small file's bytes, or None if it does not exist."""
        try:
            fd = self.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)


class TreeWriter:
    """Writes tar entries into a root, every path resolved inside it.

    Files are written under a temporary name and renamed into place, so a
    reader never sees half a file. ``owners`` keeps the archive's uid/gid (image
    layers); otherwise files belong to root, as BoxLite's guest writes them.
    ``id_shift`` is added to every owner (``idmap.HOST_BASE`` when writing
    through a box's root or into its layer, where box root is that host id).
    Devices are skipped (``/dev`` of a box is its own).
    """

    def __init__(self, root: BoxRoot, *, owners: bool = False, id_shift: int = 0) -> None:
        self.root = root
        self.owners = owners
        self.id_shift = id_shift
        self._dirs: dict[str, int] = {}

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dir_fd(self, path: str, _depth: int = 0) -> int:
        """An fd of directory ``path`` (absolute in the root), created with parents.

        A dangling symlink on the way is followed (inside the root) and its
        target created, as ``mkdir -p`` through the link would.
        """
        path = normalize(path)
        fd = self._dirs.get(path)
        if fd is not None:
            return fd
        if _depth > 40:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        try:
            fd = self.root.open_dir(path)
        except FileNotFoundError:
            parent, name = posixpath.split(path)
            pfd = self.dir_fd(parent, _depth)
            try:
                os.mkdir(name, 0o755, dir_fd=pfd)
                if self.id_shift:
                    os.chown(name, self.id_shift, self.id_shift, dir_fd=pfd, follow_symlinks=False)
            except FileExistsError:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(name, dir_fd=pfd)
                    self.dir_fd(posixpath.join(parent, target), _depth + 1)
            fd = self.root.open_dir(path)
        except NotADirectoryError as exc:
            raise NotADirectoryError(exc.errno, f"{path} is not a directory", path) from exc
        self._dirs[path] = fd
        return fd

    def _tmp_name(self, name: str) -> str:
        return f".{name[:64]}.boxlite-{secrets.token_hex(6)}"

    def _owner(self, fd_or_name: int | str, member: tarfile.TarInfo, dir_fd: int | None) -> None:
        if not self.owners and not self.id_shift:
            return
        uid, gid = (member.uid, member.gid) if self.owners else (0, 0)
        uid, gid = uid + self.id_shift, gid + self.id_shift
        with contextlib.suppress(OSError):
            if isinstance(fd_or_name, int):
                os.fchown(fd_or_name, uid, gid)
            else:
                os.chown(fd_or_name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)

    def write(
        self, path: str, member: tarfile.TarInfo, data: IO[bytes] | None, link_base: str = "/"
    ) -> None:
        """Create ``path`` (absolute in the root) as described by ``member``."""
        path = normalize(path)
        if path == "/":
            return
        parent, name = posixpath.split(path)
        pfd = self.dir_fd(parent)
        if member.isdir():
            try:
                os.mkdir(name, member.mode & 0o7777 or 0o755, dir_fd=pfd)
                created = True
            except FileExistsError:
                created = False
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                    os.unlink(name, dir_fd=pfd)
                    os.mkdir(name, member.mode & 0o7777 or 0o755, dir_fd=pfd)
                    created = True
            if created:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    os.fchmod(fd, member.mode & 0o7777 or 0o755)
                    self._owner(fd, member, None)
                finally:
                    os.close(fd)
            return
        tmp = self._tmp_name(name)
        if member.isreg():
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=pfd,
            )
            try:
                if data is not None:
                    while chunk := data.read(1024 * 1024):
                        write_all(fd, chunk)
                self._owner(fd, member, None)
                os.fchmod(fd, member.mode & 0o7777)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
        elif member.issym():
            os.symlink(member.linkname, tmp, dir_fd=pfd)
            self._owner(tmp, member, pfd)
        elif member.islnk():
            target = normalize(posixpath.join(link_base, member.linkname))
            tparent, tname = posixpath.split(target)
            os.link(
                tname, tmp, src_dir_fd=self.dir_fd(tparent), dst_dir_fd=pfd, follow_symlinks=False
            )
        elif member.isfifo():
            os.mkfifo(tmp, member.mode & 0o777, dir_fd=pfd)
        else:
            return  # devices and other special files: not in a box's tree
        try:
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise
