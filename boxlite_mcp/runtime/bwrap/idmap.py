"""Box ids are not host ids: box uid/gid N is host uid/gid ``HOST_BASE + N``.

Like rootless containers' subordinate ids: box root is host uid 100000, an
unprivileged user that owns nothing on the host, so on any host file a box
process has only "other" permissions (``/etc/shadow``, ``/root`` and every
0600/0700 path are closed to it) and its capabilities count only over files
whose owners are mapped into its user namespace.

The box still needs to own its own files, so the layers it is built from are
*idmapped mounts* (Linux >= 5.12, ``mount_setattr(MOUNT_ATTR_IDMAP)``): a file
the image stores as uid N shows in the box as uid N (host ``HOST_BASE + N``).
Box root thus owns the image's root-owned files, copies them up and changes
them in its own layer, which holds the real (shifted) host ids. The same
mapping is applied to volumes, so a volume's root-owned files are box root's,
and what box root writes there belongs to host root (as with a bind mount in
a VM); see the README's note on volumes.

Everything that moves files between host and box (copy_in/copy_out, export,
import) converts with ``to_host``/``to_box`` here, the one place of the rule.
The idmapped mounts themselves are made with ``mountapi``.
"""

from __future__ import annotations

import tarfile

HOST_BASE = 100000
SIZE = 65536
OVERFLOW = 65534  # how the kernel shows an unmapped id in the box (nobody)
#: For /proc/<pid>/uid_map and gid_map of the box's user namespace.
ID_MAP = f"0 {HOST_BASE} {SIZE}\n"


def to_host(box_id: int) -> int:
    """The host id of box uid/gid ``box_id``."""
    return HOST_BASE + box_id


def to_box(host_id: int) -> int:
    """The box's view of host id ``host_id`` (``OVERFLOW`` when it is not mapped)."""
    if HOST_BASE <= host_id < HOST_BASE + SIZE:
        return host_id - HOST_BASE
    return OVERFLOW


def tarinfo_to_box(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A ``tarfile`` filter: owners as the box sees them, no host user names."""
    info.uid, info.gid = to_box(info.uid), to_box(info.gid)
    info.uname = info.gname = ""
    return info
