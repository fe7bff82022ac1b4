"""A box's disk: its writable layer on an ext4 file system of ``disk_size_gb``.

Without it every box writes into the runtime home's file system, and one box can
fill the disk the server (and the host) live on. Each box gets a sparse image
file, ``<box>/disk.img``, formatted ext4 (so ``df`` in the box shows its size,
a full disk is ENOSPC for the box alone, and deleting files frees space again);
the host's free space drops only by what the box really wrote. The overlay's
``upper/`` and ``work/`` directories live in it.

How it is mounted: a loop device (``LOOP_CONFIGURE`` with auto-clear) and a
*detached* ext4 mount (``mountapi.detached_mount``) whose fd the runtime keeps
while the box exists: the overlay reaches it as ``/proc/<runtime>/fd/N/upper``,
snapshots and export read the same mount while the box is stopped, and when the
runtime closes the fd (box removed, server stopped or crashed) the kernel
unmounts it and frees the loop device. Nothing is ever mounted on the host, and
the image is mounted once, so two mounts of one image (which would corrupt it)
cannot happen: ``open_disk`` refuses an image a loop device still holds.

Images are copied from one ``mkfs.ext4`` template per size, copying only its
data extents (a fresh 4 GiB image holds about 2 MiB), which costs a millisecond
where ``mkfs`` costs 50. ``e2fsprogs`` (``mkfs.ext4``) is the one host tool.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import logging
import os
import secrets
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..errors import InternalError, UnavailableError
from . import idmap, mountapi

log = logging.getLogger(__name__)

IMAGE = "disk.img"
GIB = 1024**3
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A  # Linux >= 5.8
LO_FLAGS_AUTOCLEAR = 4
_LOOP_CONFIG = struct.Struct("=II QQQQQ IIII 64s64s32s QQ 8Q")
RELEASE_TIMEOUT = 10.0


def image_path(box_dir: Path) -> Path:
    return box_dir / IMAGE


def has_disk(box_dir: Path) -> bool:
    """Whether the box's layer is on its own disk (boxes made before disks were not)."""
    return image_path(box_dir).is_file()


def _mkfs() -> str:
    path = shutil.which("mkfs.ext4", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise UnavailableError(
            "enforcing a box's disk_size_gb needs `mkfs.ext4`, which is not installed; "
            "install it with `apt-get install e2fsprogs` (Debian/Ubuntu)"
        )
    return path


def template(images_dir: Path, size_gb: int) -> Path:
    """The formatted empty image of ``size_gb`` (made once, then copied)."""
    path = images_dir / f"disk-{size_gb}g.img"
    if path.is_file():
        return path
    images_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images_dir, prefix=".disk-") as tmp:
        root = Path(tmp) / "root"
        (root / "upper").mkdir(parents=True)
        (root / "work").mkdir()
        os.chown(root / "upper", idmap.to_host(0), idmap.to_host(0))  # the box's "/"
        staging = Path(tmp) / "disk.img"
        with open(staging, "wb") as f:
            f.truncate(size_gb * GIB)
        result = subprocess.run(
            [
                _mkfs(),
                "-q",
                "-F",
                "-m",
                "0",
                "-L",
                "boxlite-box",
                "-d",
                str(root),
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                str(staging),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise InternalError(f"formatting a box disk failed: {result.stderr.strip()}")
        os.rename(staging, path)
    return path


def create(box_dir: Path, images_dir: Path, size_gb: int) -> None:
    """Give the box a fresh, empty disk of ``size_gb`` (sparse)."""
    sparse_copy(template(images_dir, size_gb), image_path(box_dir))


def sparse_copy(src: Path, dest: Path) -> None:
    """Copy a file's data extents only (holes stay holes); ``dest`` is replaced."""
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            while start < end:
                copied = os.copy_file_range(fin.fileno(), fout.fileno(), end - start, start, start)
                if copied == 0:
                    break
                start += copied
            offset = end
        fout.truncate(size)
    os.replace(tmp, dest)


def _held_by_loop(image: Path) -> bool:
    target = str(image.resolve())
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        with contextlib.suppress(OSError), open(backing) as f:
            if f.read().strip() == target:
                return True
    return False


def _attach_loop(image: Path) -> tuple[int, str]:
    """A loop device backed by ``image`` that frees itself once unmounted: (fd, path)."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        os.close(backing)
        raise UnavailableError(
            f"cannot give the box its own disk: /dev/loop-control: {exc.strerror}; the "
            "bwrap runtime needs loop devices to enforce disk_size_gb (load the `loop` "
            "module, or run the server where /dev/loop-control exists), or set "
            "BOXLITE_MCP_DEFAULT_DISK_GB=0 and leave disk_size_gb unset to run boxes on "
            "the home's file system without a size limit"
        ) from exc
    try:
        for _ in range(20):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            device = f"/dev/loop{number}"
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            config = _LOOP_CONFIG.pack(
                backing,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                LO_FLAGS_AUTOCLEAR,
                os.fsencode(image)[-63:],
                b"",
                b"",
                0,
                0,
                *([0] * 8),
            )
            try:
                fcntl.ioctl(fd, LOOP_CONFIGURE, config)
            except OSError as exc:
                os.close(fd)
                if exc.errno == errno.EBUSY:  # another process took it first
                    continue
                raise InternalError(f"attaching the box's disk failed: {exc}") from exc
            return fd, device
        raise InternalError("attaching the box's disk failed: no free loop device")
    finally:
        os.close(control)
        os.close(backing)


def open_disk(image: Path) -> int:
    """Mount the box's disk (detached): the fd of its root, held by the runtime."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while _held_by_loop(image):  # polled: a previous mount is being torn down
        if time.monotonic() > deadline:
            raise InternalError(
                f"the box's disk {image} is still attached to a loop device (another "
                "server using this home, or one that has not finished stopping); stop it "
                "or detach it with `losetup -j`/`losetup -d`"
            )
        time.sleep(0.02)
    loop_fd, device = _attach_loop(image)
    try:
        return mountapi.detached_mount(
            "ext4",
            {"source": device},
            f"the box's disk {image}",
            attrs=mountapi.MOUNT_ATTR_NOSUID | mountapi.MOUNT_ATTR_NODEV,
        )
    finally:
        os.close(loop_fd)  # the mount holds the device; auto-clear frees it afterwards


def layer_path(mount_fd: int) -> Path:
    """The directory holding ``upper/`` and ``work/`` in a disk mounted by this process."""
    return Path(f"/proc/{os.getpid()}/fd/{mount_fd}")


def used_bytes(mount_fd: int) -> int:
    st = os.fstatvfs(mount_fd)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class Spare:
    """One ready disk of the default size, made in the background.

    Attaching a loop device and mounting ext4 costs 10-50 ms, most of a box's
    start; a new box takes the spare (a rename and an fd handed over). The next
    spare is made a little later, so as not to compete with the start of the box
    that took the last one, or at once when another box asks for it first.
    """

    def __init__(self, directory: Path, templates: Path, size_gb: int | None) -> None:
        self.directory = directory
        self.templates = templates
        self.size_gb = size_gb
        self._lock = threading.Lock()
        self._ready: tuple[Path, int] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._hurry = threading.Event()  # skip the delay: someone waits, or closing
        shutil.rmtree(directory, ignore_errors=True)  # a crashed server's spares

    def start(self, delay: float = 0.0) -> None:
        """Make a spare, after ``delay`` seconds, unless one exists or is being made."""
        with self._lock:
            if (
                self._closed
                or not self.size_gb
                or self._ready is not None
                or (self._thread is not None and self._thread.is_alive())
            ):
                return
            self._hurry.clear()
            self._thread = threading.Thread(
                target=self._make, args=(delay,), name="boxlite-disk-spare", daemon=True
            )
            self._thread.start()

    def _make(self, delay: float) -> None:
        assert self.size_gb
        if delay:
            self._hurry.wait(delay)
        if self._closed:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            image = self.directory / f"{secrets.token_hex(6)}.img"
            sparse_copy(template(self.templates, self.size_gb), image)
            fd = open_disk(image)
        except Exception as exc:  # the next box makes its own disk, and says why
            log.warning("could not prepare a spare box disk: %s", exc)
            return
        with self._lock:
            if not self._closed:
                self._ready = (image, fd)
                return
        os.close(fd)
        image.unlink(missing_ok=True)

    def take(self, size_gb: int, dest: Path) -> int | None:
        """The spare's mount fd, its image moved to ``dest`` (waiting for the one being
        made, if any); None when there is none of that size. Blocking."""
        if size_gb != self.size_gb:
            return None
        with self._lock:
            thread = self._thread if self._ready is None else None
        if thread is not None:
            self._hurry.set()
            thread.join(timeout=RELEASE_TIMEOUT + 5)
        with self._lock:
            if self._ready is None:
                return None
            image, fd = self._ready
            self._ready = None
        os.rename(image, dest)
        return fd

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, ready, self._ready = self._thread, self._ready, None
        self._hurry.set()
        if thread is not None:
            thread.join(timeout=RELEASE_TIMEOUT + 5)
        if ready is not None:
            os.close(ready[1])
        shutil.rmtree(self.directory, ignore_errors=True)
