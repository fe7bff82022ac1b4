"""A running box: one bubblewrap sandbox holding the box's namespaces.

Why this shape (measured on this host kind, 2 cores): a box is one long-lived
bubblewrap process and every exec *joins* it with ``nsenter`` (about 2 ms per
exec, the same as spawning a host process), rather than one bubblewrap per exec
(about 20 ms, and processes of different execs would not see each other, so a
server started by one exec could not be reached by the next). Sharing one set of
namespaces per box is what a VM gives too: background processes survive the
exec that started them, and all of them end when the box stops.

The launch chain, each step ``exec``-ing the next, so the process we spawn is
bubblewrap's monitor:

1. ``sh`` joins the box's cgroups (``JOIN_SCRIPT``) so every process of the box,
   its init included, is limited and can be found and killed;
2. ``unshare -m`` gives a private mount namespace in which ``sh`` mounts the
   box's overlay (image lower, ``upper/`` on top): the mount exists only there
   and disappears with the box, so a crash leaves no mount on the host;
3. ``bwrap``, as real root, makes new PID, IPC, UTS, mount and network
   namespaces (a box with network gets its own too: see ``network``), binds
   the overlay as ``/`` with a
   fresh ``/proc``, a ``/dev`` whose device nodes are the box's own copies, and a
   ``/tmp`` tmpfs (as on BoxLite: ``/tmp`` lasts for the box's life, cleared at
   stop), sets the hostname, and then blocks in ``--block-fd``: that process is
   PID 1 of the box. It needs no program from the image, so any rootfs works.

Every exec joins those namespaces *and* the box's own user namespace, which maps
box ids 0-65535 to host ids 100000-165535 (``idmap``): box root is an unprivileged
user on the host, "other" to the host's own files, and its capabilities count
only in that user namespace. What the box owns (its image directory, the default
image's mask, volumes) is shown through idmapped mounts. Since the box's mount,
PID and network namespaces belong to the host's user namespace, box root cannot
mount, remount or unmount anything, load modules, set the clock or make device
nodes. The global knobs of ``/proc`` are bound read-only (``PROC_READ_ONLY``) and
``/dev`` nodes are private copies, so no write reaches the host's kernel settings
or device inodes. Every process of the box runs under the seccomp filter
(``seccomp``): bubblewrap applies it to PID 1, and execs are started by a thread
that carries it.

The overlay's layers are idmapped *detached* mounts the runtime holds as fds;
``mount`` reaches them as ``/proc/<runtime pid>/fd/N``, so no box process
inherits a handle on them.

The runtime holds the write end of the block pipe. Closing it (or the runtime's
process dying) lets PID 1 go on to exec a program that does not exist, so it
exits, and the kernel kills every process left in the box's PID namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from ..errors import InternalError, InvalidArgumentError, UnavailableError
from . import hide, idmap, mountapi, mountparents, seccomp
from .host import HostTools
from .limits import BoxCgroup
from .state import process_start_time

#: Writes the shell's pid into each cgroup.procs given before "--", then execs the rest.
JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'
#: The layers are paths into the runtime's fd table (``/proc/<pid>/fd/N``, idmapped
#: detached mounts): nothing is passed down, so no box process inherits a layer.
MOUNT_SCRIPT = (
    'mount -t overlay boxlite -o "lowerdir=$1,upperdir=$2,workdir=$3,index=off" "$4" || exit 125; '
    'shift 4; exec "$@"'
)
#: Attaches idmapped volume mounts (the runtime's fds, by path) at their staging
#: paths in the private mount namespace, then execs the rest. Python because
#: ``move_mount`` has no command-line tool in util-linux 2.38; run only for boxes
#: with volumes.
ATTACH_SCRIPT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
args = sys.argv[1:]
end = args.index("--")
for spec in args[:end]:
    source, target = spec.split("=", 1)
    fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    if libc.syscall(429, fd, b"", -100, os.fsencode(target), 4) < 0:
        e = ctypes.get_errno()
        sys.exit(f"attaching a volume at {target} failed: {os.strerror(e)}")
    os.close(fd)
os.execv(args[end + 1], args[end + 1:])
"""
#: PID 1 execs this after the block pipe closes; it must not exist, so PID 1 ends.
NO_PROGRAM = "/.boxlite-mcp-box-stopped"
_READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "arm64": 63}.get(platform.machine())
#: /proc entries with global effect guarded only by uid 0: bound read-only (Docker's list).
PROC_READ_ONLY = (
    "sys",
    "sysrq-trigger",
    "irq",
    "bus",
    "fs",
    "acpi",
    "scsi",
    "driver",
    "latency_stats",
    "timer_list",
    "sched_debug",
    "keys",
    "kcore",
    "kmsg",
)
#: Device nodes of a box: private copies (chmod in the box must not touch the host's).
DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
START_TIMEOUT = 20.0
#: The mounts bubblewrap makes afresh at every start (``launch``'s --proc, --dev and
#: --tmpfs): a mount point below one is not in the box's layer (``mountparents``).
FRESH_MOUNTS = ("/proc", "/dev", "/tmp", "/dev/shm")


@dataclass
class BoxSpec:
    """What a sandbox is built from."""

    box_dir: Path
    lower: Path
    hostname: str
    network: bool
    volumes: list[tuple[str, str, bool]]  # host, guest, read_only
    cgroup: BoxCgroup
    #: Host paths no box may see (the runtime home, secrets): see ``hide``.
    hidden: Sequence[str] = ()
    #: (host file, box path) bound read-only: a box's resolv.conf and CA bundle (``network``).
    ro_files: Sequence[tuple[str, str]] = ()
    #: The directory holding the box's ``upper/`` and ``work/`` (its disk, see
    #: ``disk``); None: ``box_dir``.
    layer: Path | None = None
    #: The default image's mask layer, above ``lower`` (see ``hostimage``): an fd
    #: that ``launch`` takes over (and closes).
    mask: int | None = None


class Sandbox:
    """The process holding a running box's namespaces."""

    def __init__(
        self,
        process: anyio.abc.Process,
        init_pid: int,
        block_w: int,
        cgroup: BoxCgroup,
        userns_fd: int,
    ) -> None:
        self.process = process
        #: The box's user namespace, which every exec joins.
        self.userns_fd = userns_fd
        self.init_pid = init_pid
        self.init_start_time = process_start_time(init_pid) or 0
        self._block_w = block_w
        self.cgroup = cgroup

    @property
    def alive(self) -> bool:
        return (
            self.process.returncode is None
            and process_start_time(self.init_pid) == self.init_start_time
        )

    def box_pids(self) -> list[int]:
        """Processes inside the box (not its PID 1, not exec helpers outside it)."""
        found: list[int] = []
        for pid in self.cgroup.pids():
            if _box_pid(pid) not in (None, 1):
                found.append(pid)
        return found

    async def terminate(self, grace: float) -> None:
        """SIGTERM the box's processes and wait up to ``grace`` seconds for them to end."""
        if grace <= 0:
            return
        for pid in self.box_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:  # polled: processes exit on their own
            if not self.box_pids():
                break
            await anyio.sleep(0.01)

    async def kill(self) -> None:
        """SIGKILL PID 1 (the kernel then kills the whole box) and whatever is left."""
        with contextlib.suppress(ProcessLookupError):
            if process_start_time(self.init_pid) == self.init_start_time:
                os.kill(self.init_pid, signal.SIGKILL)
        self.close_block()
        # PID 1 first, alone (see kill_leftovers), then whatever is left.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # polled: the kernel tears the box down
            if not _running(self.init_pid, self.init_start_time):
                break
            await anyio.sleep(0.002)
        await anyio.to_thread.run_sync(self.cgroup.kill_all)
        with anyio.move_on_after(5):
            await self.process.wait()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    async def stop(self, grace: float) -> None:
        await self.terminate(grace)
        await self.kill()

    def close_block(self) -> None:
        if self._block_w >= 0:
            os.close(self._block_w)
            self._block_w = -1
        if self.userns_fd >= 0:
            os.close(self.userns_fd)
            self.userns_fd = -1


def _box_pid(pid: int) -> int | None:
    """The pid as seen inside its innermost PID namespace (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    parts = line.split()[1:]
                    return int(parts[-1]) if len(parts) > 1 else None
    except OSError:
        return None
    return None


def _check_overlay_path(path: Path) -> str:
    text = str(path)
    if any(c in text for c in ",:\n"):
        raise InvalidArgumentError(
            f"path {text!r} contains ',' or ':', which overlayfs mount options cannot "
            "carry; use a runtime home and rootfs path without them"
        )
    return text


async def _make_userns(tools: HostTools) -> int:
    """An fd of a new user namespace mapping box ids 0-65535 to the host's
    ``idmap.HOST_BASE`` + 0-65535."""
    proc = await anyio.open_process(
        [tools.unshare, "--user", "--", tools.sh, "-c", "read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        mine = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if os.readlink(f"/proc/{proc.pid}/ns/user") != mine:
                    break
            except FileNotFoundError:
                pass
            if proc.returncode is not None or time.monotonic() > deadline:
                err = b""
                if proc.stderr is not None:
                    with contextlib.suppress(Exception):
                        err = await proc.stderr.receive()
                raise UnavailableError(
                    "cannot create a user namespace for the box "
                    f"({err.decode(errors='replace').strip() or 'unshare failed'}); "
                    "check that user namespaces are enabled (sysctl user.max_user_namespaces)"
                )
            await anyio.sleep(0.0005)
        for name in ("uid_map", "gid_map"):
            _write(f"/proc/{proc.pid}/{name}", idmap.ID_MAP)
        return os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                await proc.stdin.aclose()
        with anyio.move_on_after(2):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        await anyio.wait_readable(fd)
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _blocked_on(pid: int, fd: int) -> bool:
    """Whether ``pid`` sits in read(fd): bubblewrap finished setting up the box."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    if len(fields) < 2 or not fields[0].isdigit():
        return False
    return int(fields[0]) == _READ_SYSCALL and int(fields[1], 16) == fd


async def launch(spec: BoxSpec, tools: HostTools) -> Sandbox:
    """Start the box's PID 1 and wait until its namespaces are ready."""
    layer = spec.layer or spec.box_dir
    for sub in ("upper", "work"):
        (layer / sub).mkdir(exist_ok=True)
    (spec.box_dir / "merged").mkdir(exist_ok=True)
    upper = _check_overlay_path(layer / "upper")
    work = _check_overlay_path(layer / "work")
    merged = str(spec.box_dir / "merged")
    _own_root(layer / "upper")

    dev_dir = _make_devices(spec.box_dir)
    layer_fds: list[int] = []
    volume_fds: list[int] = []
    try:
        _make_mount_parents(spec, upper)
        userns_fd = await _make_userns(tools)
    except BaseException:
        if spec.mask is not None:
            os.close(spec.mask)
        raise
    try:
        # The host's own files keep their host owners (box root is "other" to them,
        # see ``idmap``); an image directory and the mask belong to the box.
        if spec.mask is not None:
            layer_fds.append(mountapi.idmapped_clone(spec.mask, userns_fd))
        else:
            layer_fds.append(mountapi.idmapped_clone(str(spec.lower), userns_fd))
        for host, _, _ in spec.volumes:
            volume_fds.append(mountapi.idmapped_clone(host, userns_fd))
    except BaseException:
        for fd in (*layer_fds, *volume_fds, userns_fd):
            os.close(fd)
        raise
    finally:
        if spec.mask is not None:
            os.close(spec.mask)
    me = f"/proc/{os.getpid()}/fd"
    lower = ":".join(f"{me}/{fd}" for fd in layer_fds)
    if spec.mask is not None:
        lower += ":" + _check_overlay_path(spec.lower)
    staged = _stage_volumes(spec.box_dir, [host for host, _, _ in spec.volumes])
    block_r, block_w = os.pipe()
    info_r, info_w = os.pipe()
    filter_fd = seccomp.memfd()
    os.set_blocking(info_r, False)
    bwrap = [
        tools.bwrap,
        "--bind",
        merged,
        "/",
        # Mounted by host root, so writable for box root only by mode (see ``idmap``).
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--perms",
        "1777",
        "--tmpfs",
        "/dev/shm",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        spec.hostname,
        "--info-fd",
        str(info_w),
        "--block-fd",
        str(block_r),
        "--seccomp",
        str(filter_fd),
    ]
    for name in PROC_READ_ONLY:
        bwrap += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
    for name in DEVICES:
        bwrap += ["--dev-bind", str(dev_dir / name), f"/dev/{name}"]
    bwrap.append("--unshare-net")  # always: a box with network gets its own (``network``)
    bwrap += mountparents.fresh_dirs(_mount_points(spec), FRESH_MOUNTS)
    for host_file, box_path in spec.ro_files:
        bwrap += ["--ro-bind", host_file, box_path]
    for (_, guest, read_only), stage in zip(spec.volumes, staged, strict=True):
        bwrap += ["--ro-bind" if read_only else "--bind", stage, guest]
    bwrap += hide.bwrap_args(spec.hidden, str(spec.lower), spec.volumes)
    bwrap += ["--", NO_PROGRAM]
    argv = [
        tools.sh,
        "-c",
        JOIN_SCRIPT,
        "boxlite-box",
        *spec.cgroup.procs_files(),
        "--",
        tools.unshare,
        "-m",
        "--propagation",
        "private",
    ]
    if volume_fds:
        argv += [
            sys.executable,
            "-I",
            "-S",
            "-c",
            ATTACH_SCRIPT,
            *[f"{me}/{fd}={stage}" for fd, stage in zip(volume_fds, staged, strict=True)],
            "--",
        ]
    argv += [
        tools.sh,
        "-c",
        MOUNT_SCRIPT,
        "boxlite-mount",
        lower,
        upper,
        work,
        merged,
        *bwrap,
    ]
    log_path = spec.box_dir / "init.log"
    try:
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,
                pass_fds=(block_r, info_w, filter_fd),
                env=_launch_env(),
            )
        finally:
            os.close(log_fd)
    except BaseException:
        for fd in (block_w, block_r, info_r, info_w, filter_fd, userns_fd, *layer_fds, *volume_fds):
            os.close(fd)
        raise
    for fd in (block_r, info_w, filter_fd):
        os.close(fd)
    sandbox: Sandbox | None = None
    try:
        with anyio.fail_after(START_TIMEOUT):
            info = await _read_all(info_r)
            if not info:
                await process.wait()
                raise InternalError(
                    f"the box did not start: {_tail(log_path) or 'bubblewrap exited'}"
                )
            init_pid = int(json.loads(info)["child-pid"])
            sandbox = Sandbox(process, init_pid, block_w, spec.cgroup, userns_fd)
            while not _blocked_on(init_pid, block_r):
                if process.returncode is not None or process_start_time(init_pid) is None:
                    raise InternalError(
                        f"the box did not start: {_tail(log_path) or 'bubblewrap exited'}"
                    )
                await anyio.sleep(0.0005)
        return sandbox
    except BaseException:
        if sandbox is not None:
            with anyio.CancelScope(shield=True):
                await sandbox.stop(0)
        else:
            os.close(block_w)
            os.close(userns_fd)
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        raise
    finally:
        os.close(info_r)
        for fd in (*layer_fds, *volume_fds):  # mounted by now (or never will be)
            os.close(fd)


def _make_mount_parents(spec: BoxSpec, upper: str) -> None:
    """The missing parents of the box's mount points, made box root's (``mountparents``)."""
    if spec.mask is not None:
        lowers = [
            mountparents.Layer(f"/proc/self/fd/{spec.mask}", idmapped=True),
            mountparents.Layer(str(spec.lower), idmapped=False),
        ]
    else:
        lowers = [mountparents.Layer(str(spec.lower), idmapped=True)]
    mountparents.make(upper, lowers, _mount_points(spec), FRESH_MOUNTS)


def _mount_points(spec: BoxSpec) -> list[str]:
    """Where the box's bind mounts go (box paths)."""
    return [box_path for _, box_path in spec.ro_files] + [guest for _, guest, _ in spec.volumes]


def _own_root(upper: Path) -> None:
    """The box's root directory belongs to box root (a fresh ``upper/`` is host root's)."""
    st = os.lstat(upper)
    if st.st_uid == 0:
        os.chown(upper, idmap.to_host(0), idmap.to_host(0))


def _stage_volumes(box_dir: Path, hosts: Sequence[str]) -> list[str]:
    """Empty directories (files, for a file volume) where the box's idmapped volumes
    are attached, in the box's private mount namespace only, for bubblewrap to bind."""
    stages: list[str] = []
    for i, host in enumerate(hosts):
        stage = box_dir / "volumes" / str(i)
        stage.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stage.is_dir() != os.path.isdir(host):
                (os.rmdir if stage.is_dir() else os.unlink)(stage)
        if os.path.isdir(host):
            stage.mkdir(exist_ok=True)
        else:
            stage.touch(mode=0o600, exist_ok=True)
        stages.append(str(stage))
    return stages


def _make_devices(box_dir: Path) -> Path:
    """The box's own device nodes (idempotent)."""
    dev = box_dir / "dev"
    dev.mkdir(exist_ok=True)
    for name, (major, minor) in DEVICES.items():
        path = dev / name
        if not path.exists():
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, 0o666)
            os.chown(path, idmap.to_host(0), idmap.to_host(0))  # box root's
    return dev


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


def _launch_env() -> dict[str, str]:
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def kill_leftovers(init_pid: int | None, init_start_time: int | None, cgroup: BoxCgroup) -> None:
    """After a crash: kill a box's surviving processes and remove its cgroups.

    PID 1 goes first, alone: the kernel then kills the rest of the box while the
    exec helpers outside it are still alive to reap their children. Killing all
    at once would orphan those children to the host's init, and the box's PID 1
    could not finish exiting until that init reaps them.
    """
    if init_pid and init_start_time and process_start_time(init_pid) == init_start_time:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init_pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _running(init_pid, init_start_time):
            time.sleep(0.005)
    cgroup.remove()


def _running(pid: int, start_time: int) -> bool:
    """Alive and not a zombie (the same process: start time checked)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == start_time
