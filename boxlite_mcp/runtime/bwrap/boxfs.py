"""Paths inside a running box, resolved safely from the host.

Box code can plant symlinks (``/etc/x -> /etc/shadow``, ``/a -> ../../..``). The
host reaches the box's files through ``/proc/<pid>/root`` and resolves every
path with ``openat2(RESOLVE_IN_ROOT)``: absolute links and ``..`` are resolved
against the box's root, never the host's; magic links are refused. Each file is
then created or opened relative to a resolved directory fd with
``O_NOFOLLOW``, so no step can be redirected outside the box.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import InternalError

_SYS_OPENAT2 = 437  # the same number on every architecture (added in 5.6)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    """``openat2(2)``; raises OSError like ``os.open``."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _syscall(
        ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
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
