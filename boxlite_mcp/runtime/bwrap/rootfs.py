"""Images for bwrap boxes: the host's root, a rootfs directory, or an OCI layout.

A box's root filesystem is an overlay: the image is the read-only lower layer,
the box's own ``upper/`` directory takes every write. The image is resolved once
at create time to a lower directory:

- no ``image`` and no ``rootfs_path`` (or ``image="host"``): the host's ``/``;
- ``rootfs_path`` naming a directory with an ``index.json`` and ``blobs/``: an
  OCI image layout, unpacked once (layers in order, whiteouts honoured) into
  ``<home>/images/<manifest digest>/rootfs`` and shared by every box using it;
- ``rootfs_path`` naming any other directory: that directory, used as is (the
  box never writes to it).

A registry reference is refused: this runtime has no registry access.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError, UnsupportedError
from ..types import BoxOptions

HOST_IMAGE = "host"


@dataclass(frozen=True)
class ResolvedImage:
    """What a box is built from."""

    display: str  # BoxInfo.image
    lower: Path  # overlay lowerdir
    kind: str  # "host" | "rootfs" | "oci"


def check_options(options: BoxOptions) -> None:
    """Refuse what this runtime cannot honour, before anything is created."""
    if options.image not in (None, "", HOST_IMAGE):
        raise UnsupportedError(
            f"image {options.image!r}: the bwrap runtime has no registry access and "
            "cannot pull images. Leave `image` unset to use the host's root filesystem "
            "(read-only under the box's own writable layer), pass `rootfs_path` with a "
            "local rootfs directory or OCI image layout, or use the `rest` or `local` "
            "runtime."
        )
    if options.image and options.rootfs_path:
        raise UnsupportedError("pass either `image` or `rootfs_path`, not both")


def is_oci_layout(path: Path) -> bool:
    return (path / "index.json").is_file() and (path / "blobs").is_dir()


def resolve(options: BoxOptions, images_dir: Path) -> ResolvedImage:
    """Resolve the box's image to a lower directory (unpacking OCI layouts once)."""
    check_options(options)
    if not options.rootfs_path:
        return ResolvedImage(display=HOST_IMAGE, lower=Path("/"), kind="host")
    path = Path(options.rootfs_path)
    if not path.is_absolute():
        raise ImageError(f"rootfs_path {options.rootfs_path!r} must be an absolute path")
    if not path.is_dir():
        raise ImageError(
            f"rootfs_path {options.rootfs_path!r} is not a directory; pass a rootfs "
            "directory or an OCI image layout (a directory with index.json and blobs/)"
        )
    if is_oci_layout(path):
        from .oci import unpack_layout

        return ResolvedImage(display=str(path), lower=unpack_layout(path, images_dir), kind="oci")
    return ResolvedImage(display=str(path), lower=path.resolve(), kind="rootfs")
