"""OCI image layouts from directories on this host, for boxes without a registry.

BoxLite's ``rootfs_path`` takes an OCI image layout (``oci-layout``, ``index.json``,
``blobs/``), not a bare root filesystem. ``build_layout`` turns a rootfs directory
into a one-layer layout, and ``host_rootfs`` assembles a tiny rootfs from this
host's own programs and the shared libraries they load, so a box can boot with no
image pulled at all (the VM probe and the real-VM tests use it).

Layouts are reproducible: entries sorted, owners and times zeroed, so the same
input gives the same digests and BoxLite's image cache is reused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

#: Programs ``host_rootfs`` copies by default: enough for a shell and the contract checks.
DEFAULT_PROGRAMS = (
    "sh",
    "cat",
    "echo",
    "printf",
    "sleep",
    "env",
    "ls",
    "mkdir",
    "rm",
    "mv",
    "cp",
    "touch",
    "chmod",
    "head",
    "tail",
    "wc",
    "dd",
    "true",
    "false",
    "pwd",
    "id",
    "stat",
    "test",
    "sort",
    "tr",
    "seq",
    "yes",
    "kill",
    "sha256sum",
    "basename",
    "dirname",
    "uname",
    "tee",
    "find",
    "grep",
    "sed",
)

_LDD_PATH = re.compile(r"(/\S+)")
_OCI_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def is_layout(path: Path) -> bool:
    """Whether ``path`` is an OCI image layout BoxLite can load."""
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def oci_arch() -> str:
    """This host's architecture in OCI's vocabulary (``amd64``, ``arm64``)."""
    machine = platform.machine().lower()
    return _OCI_ARCH.get(machine, machine)


def build_layout(
    rootfs: Path,
    dest: Path,
    *,
    cmd: list[str] | None = None,
    env: dict[str, str] | None = None,
    working_dir: str = "/",
) -> Path:
    """Write a one-layer OCI image layout of the directory ``rootfs`` to ``dest``.

    ``dest`` is created (it must not hold a layout already, or it is replaced).
    Returns ``dest``. Symlinks are kept as links; special files are skipped.
    """
    if not rootfs.is_dir():
        raise NotADirectoryError(f"rootfs {rootfs} is not a directory")
    tar_bytes = _tar_directory(rootfs)
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    layer = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    environment.update(env or {})
    config = {
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Cmd": cmd or ["/bin/sh"],
            "WorkingDir": working_dir,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "boxlite-mcp build_layout"}],
    }
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "blobs" / "sha256").mkdir(parents=True)
    layer_desc = _write_blob(dest, layer, MEDIA_LAYER_GZIP)
    config_desc = _write_blob(dest, _json_bytes(config), MEDIA_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc = _write_blob(dest, _json_bytes(manifest), MEDIA_MANIFEST)
    manifest_desc["platform"] = {"architecture": oci_arch(), "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [manifest_desc]}
    (dest / "index.json").write_bytes(_json_bytes(index))
    (dest / "oci-layout").write_bytes(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    return dest


def host_rootfs(dest: Path, programs: Iterable[str] = DEFAULT_PROGRAMS) -> Path:
    """Assemble a minimal Linux rootfs in ``dest`` from this host's programs.

    Each program found on ``PATH`` is copied with the shared libraries ``ldd``
    names; the host's top-level symlinks (``/bin -> usr/bin`` on merged-/usr
    systems) are reproduced. Programs not found are skipped; ``sh`` is required.
    """
    files: set[Path] = set()
    for program in programs:
        found = shutil.which(program)
        if found is None:
            if program == "sh":
                raise FileNotFoundError("no 'sh' on PATH to build a rootfs from")
            continue
        files.add(Path(found))
        files.update(_shared_libraries(Path(found)))
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            link = dest / top
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(os.readlink(host))
            (dest / host.resolve().relative_to("/")).mkdir(parents=True, exist_ok=True)
    for path in sorted(files):
        _copy_with_parents(path, dest)
    for directory in ("tmp", "proc", "sys", "dev", "root", "etc", "var/tmp", "run"):
        (dest / directory).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def _shared_libraries(binary: Path) -> set[Path]:
    try:
        result = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    libraries: set[Path] = set()
    for line in result.stdout.splitlines():
        for match in _LDD_PATH.findall(line):
            candidate = Path(match)
            if candidate.exists():
                libraries.add(candidate)
    return libraries


def _copy_with_parents(source: Path, root: Path) -> None:
    """Copy ``source`` to the same absolute path under ``root``, following the host's
    directory symlinks the way the rootfs reproduces them."""
    parent = source.parent.resolve()
    target = root / parent.relative_to("/") / source.name
    source = parent / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        return
    if source.is_symlink():
        link = os.readlink(source)
        target.symlink_to(link)
        resolved = (source.parent / link).resolve() if not os.path.isabs(link) else Path(link)
        if resolved.exists():
            _copy_with_parents(resolved, root)
        return
    shutil.copy2(source, target)


def _tar_directory(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(_walk(root)):
            relative = path.relative_to(root).as_posix()
            info = archive.gettarinfo(str(path), arcname=relative)
            if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def _walk(root: Path) -> Iterable[Path]:
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        for name in dirnames:
            yield base / name
        for name in filenames:
            path = base / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield path


def _write_blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
