"""Box paths as file transfer sees them in a real BoxLite box (REST and local runtimes).

Copies land in the box's root filesystem. ``/tmp``, ``/dev/shm`` and ``/run`` are
tmpfs mounts inside a box, so a file copied there would be invisible to its
commands: copies into them are refused up front, with a clear way out.
"""

from __future__ import annotations

import posixpath

from ..errors import InvalidArgumentError

#: Box paths under a tmpfs mount, invisible to file transfer.
TMPFS_MOUNTS = ("/tmp", "/dev/shm", "/run")


def check_box_path(path: str, role: str) -> str:
    """A box path must be absolute and NUL-free; returns its tmpfs mount, if under one."""
    if not path.startswith("/"):
        raise InvalidArgumentError(
            f"box {role} path {path!r} must be absolute (start with '/'), e.g. /root/{path}"
        )
    if "\x00" in path:
        raise InvalidArgumentError(f"box {role} path {path!r} contains a NUL byte")
    normalised = posixpath.normpath(path)
    for mount in TMPFS_MOUNTS:
        if normalised == mount or normalised.startswith(mount + "/"):
            return mount
    return ""


def check_copy_destination(path: str) -> None:
    """A copy's destination: a valid box path, and not under a tmpfs mount."""
    mount = check_box_path(path, "destination")
    if mount:
        raise InvalidArgumentError(
            f"cannot copy into {path!r}: {mount} is a tmpfs mount inside the box, so files "
            "copied there would be invisible to commands in it; copy to a path on the box's "
            "disk instead, e.g. /root or /srv"
        )
