"""Images: the host root (default), a rootfs directory, an OCI image layout; no registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.errors import ImageError, UnsupportedError
from boxlite_mcp.runtime.local.oci import build_layout, host_rootfs
from boxlite_mcp.runtime.types import BoxOptions

from .conftest import listdir, run, sh

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny rootfs made of a few host programs and their libraries."""
    return host_rootfs(tmp_path_factory.mktemp("rootfs") / "root")


def _layer(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A gzip layer; ``None`` data makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _blob(layout: Path, data: bytes, media: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}


def layered_layout(base: Path, dest: Path) -> Path:
    """``base`` as layer 1, then layers with a whiteout and an opaque directory."""
    build_layout(base, dest)
    index = json.loads((dest / "index.json").read_text())
    manifest_path = dest / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    media = "application/vnd.oci.image.layer.v1.tar+gzip"
    layers = [
        _layer(
            [
                ("data", None),
                ("data/old.txt", b"old"),
                ("data/keep/", None),
                ("data/keep/x", b"x"),
                ("etc/gone.txt", b"gone"),
                ("etc/stay.txt", b"stay"),
            ]
        ),
        _layer(
            [
                ("etc/.wh.gone.txt", b""),
                ("data/keep/.wh..wh..opq", b""),
                ("data/keep/new.txt", b"new"),
            ]
        ),
    ]
    manifest["layers"] += [_blob(dest, layer, media) for layer in layers]
    desc = _blob(dest, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    index["manifests"] = [desc]
    (dest / "index.json").write_text(json.dumps(index))
    return dest


async def test_rootfs_directory(runtime: BwrapRuntime, rootfs: Path) -> None:
    before = listdir(rootfs)
    box = await runtime.create(BoxOptions(rootfs_path=str(rootfs)))
    assert (await box.info()).image == str(rootfs)
    result, out, _ = await sh(box, "echo hi > /written; cat /written; test -e /usr/bin/python3")
    assert (result.exit_code, out) == (1, b"hi\n")  # written; no python in this image
    assert listdir(rootfs) == before  # the image is never written


async def test_oci_layout_layers_and_whiteouts(
    runtime: BwrapRuntime, rootfs: Path, tmp_path: Path
) -> None:
    layout = layered_layout(rootfs, tmp_path / "layout")
    box = await runtime.create(BoxOptions(rootfs_path=str(layout)))
    assert (await run(box, "test", "-e", "/etc/gone.txt"))[0].exit_code == 1  # whiteout
    assert (await run(box, "cat", "/etc/stay.txt"))[1] == b"stay"
    assert (await run(box, "ls", "/data"))[1] == b"keep\nold.txt\n"
    assert (await run(box, "ls", "/data/keep"))[1] == b"new.txt\n"  # opaque: x is hidden
    second = await runtime.create(BoxOptions(rootfs_path=str(layout)))
    assert (await run(second, "cat", "/etc/stay.txt"))[1] == b"stay"
    images = [p for p in listdir(runtime.store.images_dir) if not p.startswith(".")]
    assert len(images) == 1  # unpacked once, shared


async def test_registry_image_is_refused_at_once(runtime: BwrapRuntime) -> None:
    with pytest.raises(UnsupportedError, match="rootfs_path"):
        await runtime.create(BoxOptions(image="docker.io/library/alpine:3.20"))
    assert await runtime.list() == []
    box = await runtime.create(BoxOptions(image="host"))
    assert (await box.info()).image == "host"


async def test_bad_layouts_are_image_errors(
    runtime: BwrapRuntime, rootfs: Path, tmp_path: Path
) -> None:
    with pytest.raises(ImageError):
        await runtime.create(BoxOptions(rootfs_path="relative/path"))
    layout = build_layout(rootfs, tmp_path / "corrupt")
    blobs = layout / "blobs" / "sha256"
    victim = max(blobs.iterdir(), key=lambda p: p.stat().st_size)  # the layer
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ImageError, match="corrupt"):
        await runtime.create(BoxOptions(rootfs_path=str(layout)))
    assert await runtime.list() == []
