"""Box ids are not host ids: box uid/gid N is host uid/gid ``HOST_BASE + N``.

Like rootless containers' subordinate ids: box root is host uid 100000, an
unprivileged user that owns nothing on the host, so on any host file a box
process has only "other" permissions (``/etc/shadow``, ``/root`` and every
0600/0700 path are closed to it) and its capabilities count only over files
whose owners are mapped into its user namespace.

The host's own operating system (the default image's bottom layer) keeps its
host owners, so in the box its files belong to ``nobody`` and box root can read
and run them only as any other user could: a host file the default image's mask
would let through by mistake (or the operator includes) stays closed if it is
0600, and the host's set-uid programs do not raise privileges. Box root cannot
change those files in place (writes to root-owned OS paths such as
``/var/lib/dpkg`` fail, so ``apt-get install`` does not work); it can create
files anywhere, replace OS files by deleting them first, and install into its
own directories (``pip install --user``, ``python3 -m venv``).

What the box owns is shown through *idmapped mounts* (Linux >= 5.12,
``mount_setattr(MOUNT_ATTR_IDMAP)``, see ``mountapi``): a ``rootfs_path`` or OCI
image and the default image's mask (``/``, ``/etc``, ``/root`` ... belong to
box root), and volumes, so a file stored as uid N shows as box uid N. The box's
own layer holds the real, shifted host ids. Volumes are the operator's choice
to share: what box root writes there belongs to host root (as a VM's writes
through a shared folder would); see the README's note on volumes.

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
