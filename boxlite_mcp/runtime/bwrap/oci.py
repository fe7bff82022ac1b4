"""Local OCI image layouts unpacked into a root filesystem, once, cached by digest.

``unpack_layout`` reads ``index.json`` (following nested indexes, picking this
host's platform), verifies each blob's sha256, and applies the manifest's layers
in order into ``<images>/<manifest digest>/rootfs``: first the layer's whiteouts
(``.wh.<name>`` deletes ``name`` from the layers below, ``.wh..wh..opq`` empties
a directory of them), then its entries. Every path is resolved inside the rootfs
being built (``boxfs``), so a layer cannot write outside it, whatever its links.
Compressed layers: gzip, bzip2 and xz (the stdlib's); zstd is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import posixpath
import secrets
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

from ..errors import BoxliteError, ImageError
from ..shared import archive
from .boxfs import BoxRoot, TreeWriter

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if (
        algorithm != "sha256"
        or not hexdigest
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise ImageError(f"unsupported or malformed digest {digest!r} in the OCI layout")
    path = layout / "blobs" / algorithm / hexdigest
    if not path.is_file():
        raise ImageError(f"the OCI layout {layout} lacks blob {digest}")
    return path


def _verify(path: Path, digest: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    if "sha256:" + h.hexdigest() != digest:
        raise ImageError(f"blob {digest} of the OCI layout is corrupt (digest mismatch)")


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ImageError(f"{path} is not a JSON object")
    return value


def _pick(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    arch = _ARCH.get(platform.machine(), platform.machine())
    for desc in manifests:
        plat = desc.get("platform") or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture", arch) == arch:
            return desc
    raise ImageError(f"the OCI layout has no image for linux/{arch}")


def manifest_of(layout: Path) -> tuple[str, dict[str, Any]]:
    """The manifest this host would run: (digest, manifest JSON)."""
    index = _json(layout / "index.json")
    for _ in range(8):  # nested indexes, bounded
        manifests = index.get("manifests") or []
        if not manifests:
            raise ImageError(f"the OCI layout {layout} lists no manifests in index.json")
        desc = _pick(manifests)
        digest = str(desc.get("digest", ""))
        path = _blob(layout, digest)
        _verify(path, digest)
        if desc.get("mediaType") in (MEDIA_INDEX, DOCKER_LIST):
            index = _json(path)
            continue
        return digest, _json(path)
    raise ImageError(f"the OCI layout {layout} nests indexes too deeply")


def unpack_layout(layout: Path, images_dir: Path) -> Path:
    """The rootfs of ``layout``, unpacked into ``images_dir`` unless already there."""
    digest, manifest = manifest_of(layout)
    key = digest.replace(":", "-")
    dest = images_dir / key
    rootfs = dest / "rootfs"
    if (dest / "complete").is_file():
        return rootfs
    staging = images_dir / f".{key}.{secrets.token_hex(4)}.tmp"
    (staging / "rootfs").mkdir(parents=True)
    try:
        for layer in manifest.get("layers") or []:
            layer_digest = str(layer.get("digest", ""))
            blob = _blob(layout, layer_digest)
            _verify(blob, layer_digest)
            if "zstd" in str(layer.get("mediaType", "")):
                raise ImageError(
                    f"layer {layer_digest} is zstd-compressed, which this runtime cannot "
                    "read; rebuild the image with gzip layers"
                )
            apply_layer(blob, staging / "rootfs")
        (staging / "complete").write_text(digest + "\n")
        try:
            os.rename(staging, dest)
        except OSError:  # another runtime unpacked it meanwhile
            if not (dest / "complete").is_file():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, (OSError, tarfile.TarError)) and not isinstance(exc, BoxliteError):
            raise ImageError(f"cannot unpack the OCI layout {layout}: {exc}") from exc
        raise
    return rootfs


def _remove(root: BoxRoot, path: str) -> None:
    parent, name = posixpath.split(path)
    try:
        pfd = root.open_dir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
    finally:
        os.close(pfd)


def _empty(root: BoxRoot, path: str) -> None:
    try:
        fd = root.open_dir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        for name in os.listdir(fd):
            _remove(root, posixpath.join(path, name))
    finally:
        os.close(fd)


def apply_layer(blob: Path, rootfs: Path) -> None:
    """Apply one layer tarball to ``rootfs``: whiteouts first, then entries."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    root = BoxRoot(root_fd)
    try:
        with tarfile.open(blob, mode="r:*") as tar:
            for member in tar:
                name = _name(member)
                base = posixpath.basename(name)
                if base == OPAQUE:
                    _empty(root, "/" + posixpath.dirname(name))
                elif base.startswith(WHITEOUT):
                    _remove(
                        root, "/" + posixpath.join(posixpath.dirname(name), base[len(WHITEOUT) :])
                    )
        with TreeWriter(root, owners=True) as writer, tarfile.open(blob, mode="r:*") as tar:
            for member in tar:
                name = _name(member)
                if posixpath.basename(name).startswith(WHITEOUT):
                    continue
                data = tar.extractfile(member) if member.isreg() else None
                writer.write("/" + name, member, data, link_base="/")
    finally:
        root.close()


def _name(member: tarfile.TarInfo) -> str:
    try:
        return archive.check_member(member, contained_links=False)
    except BoxliteError:
        if member.ischr() or member.isblk() or member.isfifo():
            with contextlib.suppress(BoxliteError):
                return archive.clean_name(member.name)  # devices: skipped by the writer
        raise
