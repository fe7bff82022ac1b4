"""The kernel's file-descriptor mount API (Linux >= 5.12), the few calls we use.

``open_tree``/``mount_setattr`` make *idmapped* mounts (a layer or volume shown
with box ids, see ``idmap``) and ``fsopen``/``fsmount`` *detached* file systems
(the default image's mask on a tmpfs, see ``hostimage``; a box's disk, see
``disk``): mounts that exist only as file descriptors, attached nowhere on the
host, gone when the last user closes them, so a crash leaves no mount behind.
No command-line tool of util-linux 2.38 and no standard-library module offers
these calls, and a binding library for four syscalls is not worth a dependency:
ctypes' ``syscall`` is enough.
"""

from __future__ import annotations

import ctypes
import os

from ..errors import UnavailableError
from .syscall import syscall

# Syscall numbers shared by every architecture (added after the table unification).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_IDMAP = 0x00100000
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


IDMAP_HINT = (
    "idmapped mounts need Linux >= 5.12 and a file system that supports them (ext4, "
    "xfs, btrfs, tmpfs >= 6.3, ...); box root would otherwise own nothing in its image. "
    "Put the runtime home, images and volumes on such a file system, or use the rest "
    "runtime"
)
MOUNT_HINT = "the bwrap runtime needs Linux >= 5.12 (the fd-based mount API), run as root"


def _check(rc: int, call: str, what: str, hint: str) -> int:
    """``rc``, or UnavailableError saying what could not be done, why, and what to do."""
    if rc < 0:
        err = ctypes.get_errno()
        raise UnavailableError(f"cannot mount {what} ({call}: {os.strerror(err)}); {hint}")
    return int(rc)


def idmapped_clone(path: str | int, userns_fd: int) -> int:
    """A detached copy of the mount at ``path`` (or of mount fd ``path``) whose ids
    are shown through ``userns_fd``'s mapping. The fd is close-on-exec.

    It serves as an overlay layer (``lowerdir=/proc/self/fd/N``) or is attached
    with ``move_mount`` in the box's private mount namespace.
    """
    what = path if isinstance(path, str) else "the default image's mask"
    if isinstance(path, str):
        rc = syscall(
            ctypes.c_long(_SYS_OPEN_TREE),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC),
        )
    else:
        rc = syscall(
            ctypes.c_long(_SYS_OPEN_TREE),
            ctypes.c_int(path),
            ctypes.c_char_p(b""),
            ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH),
        )
    fd = _check(rc, "open_tree", what, IDMAP_HINT)
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    try:
        _check(
            syscall(
                ctypes.c_long(_SYS_MOUNT_SETATTR),
                ctypes.c_int(fd),
                ctypes.c_char_p(b""),
                ctypes.c_uint(AT_EMPTY_PATH),
                ctypes.byref(attr),
                ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            "mount_setattr",
            what,
            IDMAP_HINT,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def detached_mount(fstype: str, options: dict[str, str], what: str, attrs: int = 0) -> int:
    """A new ``fstype`` file system mounted nowhere: an fd of its root (close-on-exec).

    ``options`` are its mount options (``source`` names the device); ``attrs``
    are ``MOUNT_ATTR_*`` flags of the mount (e.g. ``MOUNT_ATTR_NOSUID``).
    """
    fs = _check(
        syscall(ctypes.c_long(_SYS_FSOPEN), ctypes.c_char_p(fstype.encode()), ctypes.c_uint(1)),
        "fsopen",
        what,
        MOUNT_HINT,
    )  # FSOPEN_CLOEXEC
    try:
        for key, value in options.items():
            _check(
                syscall(
                    ctypes.c_long(_SYS_FSCONFIG),
                    ctypes.c_int(fs),
                    ctypes.c_uint(FSCONFIG_SET_STRING),
                    ctypes.c_char_p(key.encode()),
                    ctypes.c_char_p(value.encode()),
                    ctypes.c_int(0),
                ),
                "fsconfig",
                what,
                MOUNT_HINT,
            )
        _check(
            syscall(
                ctypes.c_long(_SYS_FSCONFIG),
                ctypes.c_int(fs),
                ctypes.c_uint(FSCONFIG_CMD_CREATE),
                None,
                None,
                ctypes.c_int(0),
            ),
            "fsconfig",
            what,
            MOUNT_HINT,
        )
        return _check(
            syscall(
                ctypes.c_long(_SYS_FSMOUNT),
                ctypes.c_int(fs),
                ctypes.c_uint(1),
                ctypes.c_uint(attrs),
            ),
            "fsmount",
            what,
            MOUNT_HINT,
        )
    finally:
        os.close(fs)


def detached_tmpfs(size: str = "8m") -> int:
    """A new tmpfs mounted nowhere: an fd of its root directory (close-on-exec)."""
    return detached_mount("tmpfs", {"size": size, "mode": "0755"}, "a tmpfs")
