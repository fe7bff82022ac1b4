"""The bwrap runtime: boxes as bubblewrap sandboxes on this host.

Isolation is namespaces (user, PID, IPC, UTS, mount, network), an overlay root
per box and cgroup limits: weaker than a VM (one shared kernel), and
``info()`` says so. See ``sandbox`` for how a box runs and why.
"""

from __future__ import annotations

# asyncio: a fire-and-forget timer for the coalesced record save (no task group owns it).
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from ..errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from ..network.expose import ExposedService
from ..network.secrets import Secret
from ..shared import archive, validation
from ..types import (
    BoxInfo,
    BoxLimits,
    BoxOptions,
    BoxStatus,
    Capabilities,
    ExecResult,
    RuntimeInfo,
    RuntimeMetrics,
    check_name,
    check_nul,
)
from . import disk, hide, hostimage, rootfs, seccomp, snapshots
from .box import BwrapBox
from .execution import BwrapExecution
from .host import host_tools
from .limits import BoxCgroup, cgroup_mode
from .network import BoxNetwork, NetworkRules
from .sandbox import Sandbox, kill_leftovers
from .state import BoxRecord, Store, default_home

log = logging.getLogger(__name__)

ISOLATION = (
    "Linux namespaces (user, PID, IPC, UTS, mount, network) with a private overlay root "
    "filesystem, cgroup limits and a seccomp filter modelled on Docker's default, via "
    "bubblewrap; box ids map to unprivileged host ids (box root is host uid 100000) and "
    "the default image is the host's operating system without its data. Processes share "
    "the host's kernel, so this is weaker isolation than a BoxLite micro-VM."
)


class BoxState:
    """What the runtime holds for one box: its record and, when running, its sandbox."""

    def __init__(self, runtime: BwrapRuntime, record: BoxRecord) -> None:
        self.runtime = runtime
        self.record = record
        self.sandbox: Sandbox | None = None
        #: The host side of its network while running (boxes with network only).
        self.network: BoxNetwork | None = None
        #: box_expose listeners by the box's port, while running.
        self.exposed: dict[int, ExposedService] = {}
        self.lock = anyio.Lock()
        self.executions: set[BwrapExecution] = set()
        self.cgroup = BoxCgroup(dirs=list(record.cgroup_dirs), mode=record.cgroup_mode)
        self._cpu_sample: tuple[float, int] | None = None
        self._oom_seen = 0
        self._save_pending = False

    def refresh(self) -> None:
        """Notice a box whose PID 1 died on its own: it is stopped now."""
        if self.sandbox is not None and not self.sandbox.alive:
            self.sandbox.close_block()
            self.sandbox = None
            self.close_network()
            self.record.status = BoxStatus.STOPPED
            self.record.live = None
            self.runtime.store.save(self.record)

    async def stop(self, runtime: BwrapRuntime, grace: float | None) -> None:
        self.refresh()
        if self.sandbox is None:
            if self.record.status is BoxStatus.RUNNING:
                self.record.status = BoxStatus.STOPPED
                runtime.store.save(self.record)
            return
        self.record.status = BoxStatus.STOPPING
        sandbox = self.sandbox
        with anyio.CancelScope(shield=True):
            await sandbox.terminate(runtime.stop_timeout if grace is None else grace)
            for execution in list(self.executions):
                execution.kill_tree()  # helpers outside the box too: they end as killed
            await sandbox.kill()
            for execution in list(self.executions):
                with anyio.move_on_after(2):
                    await execution.wait()
            await anyio.to_thread.run_sync(self.cgroup.remove)
        self.sandbox = None
        self.close_network()
        self._cpu_sample = None
        self.record.status = BoxStatus.STOPPED
        self.record.live = None
        runtime.boxes_stopped_total += 1
        runtime.store.save(self.record)

    def close_network(self) -> None:
        """End the box's proxy, DNS and exposed ports (the box stopped)."""
        if self.network is not None:
            self.network.close()
            self.network = None
        for service in self.exposed.values():
            service.close()
        self.exposed.clear()

    def exposed_host_ports(self) -> set[int]:
        return {service.host_port for service in self.exposed.values()}

    def on_exit(self, execution: BwrapExecution, result: ExecResult) -> None:
        self.executions.discard(execution)
        self.save_soon()

    def save_soon(self) -> None:
        """Persist counters within a second, batching the writes of busy boxes."""
        if self._save_pending:
            return
        self._save_pending = True

        def save() -> None:
            self._save_pending = False
            if self.runtime._states.get(self.record.id) is self:
                with contextlib.suppress(OSError):
                    self.runtime.store.save(self.record)

        asyncio.get_running_loop().call_later(1.0, save)

    def oom_check(self) -> bool:
        """Whether the OOM killer struck in the box since the last check."""
        count = self.cgroup.oom_kills()
        if count > self._oom_seen:
            self._oom_seen = count
            return True
        return False

    async def cpu_percent(self) -> float | None:
        """CPU use since the previous call (first call: over a 100 ms sample)."""
        usage = self.cgroup.cpu_usage_ns()
        if usage is None:
            return None
        now = time.monotonic()
        if self._cpu_sample is None:
            self._cpu_sample = (now, usage)
            await anyio.sleep(0.1)
            usage2 = self.cgroup.cpu_usage_ns() or usage
            now2 = time.monotonic()
            self._cpu_sample = (now2, usage2)
            return round((usage2 - usage) / ((now2 - now) * 1e9) * 100, 2)
        then, before = self._cpu_sample
        self._cpu_sample = (now, usage)
        elapsed = max(now - then, 1e-6)
        return round((usage - before) / (elapsed * 1e9) * 100, 2)


class BwrapRuntime:
    """Boxes as bubblewrap sandboxes (implements ``base.Runtime``).

    ``home`` defaults to ``BOXLITE_HOME``, else ``$XDG_DATA_HOME/boxlite-mcp``.
    Limits not given in a box's options default to the values here;
    ``stop_timeout`` is how long ``stop`` waits after SIGTERM before SIGKILL.
    ``copy_limits`` caps what copy_out takes from a box (checked while packing).
    No box sees the home or ``hidden_paths`` (default: the auth tokens file named
    by ``BOXLITE_MCP_AUTH_TOKENS_FILE``, if set); see ``hide``.
    ``net_allow`` is the widest set of destinations any box with network may reach
    (``policy`` syntax; default ``*``, the public internet only); see ``network``.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        default_cpus: int | None = None,
        default_memory_mib: int | None = 2048,
        default_max_processes: int | None = 2048,
        stop_timeout: float = 3.0,
        copy_limits: archive.Limits | None = None,
        hidden_paths: Sequence[Path | str] | None = None,
        net_allow: Sequence[str] | None = None,
        expose_host: str = "127.0.0.1",
        server_ports: Sequence[int] = (),
        secrets: Mapping[str, Secret] | None = None,
        net_ca_file: str | None = None,
        image_include: Sequence[Path | str] | None = None,
        default_disk_gb: int | None = 4,
    ) -> None:
        self.net_rules = NetworkRules(
            net_allow,
            expose_host=expose_host,
            server_ports=server_ports,
            secrets=secrets,
            net_ca_file=net_ca_file,
        )
        self.tools = host_tools()
        seccomp.bpf()  # no box runs without its filter: say now if it cannot be built
        self.home = Path(home) if home is not None else default_home()
        self.store = Store(self.home)
        self.cgroup_mode = cgroup_mode()
        self.default_cpus = default_cpus
        self.default_memory_mib = default_memory_mib
        self.default_max_processes = default_max_processes
        self.stop_timeout = stop_timeout
        self.copy_limits = copy_limits or archive.Limits()
        extra = hide.default_hidden() if hidden_paths is None else list(hidden_paths)
        self.hidden_paths = hide.resolve([self.home, *extra])
        includes = hostimage.includes_from_env() if image_include is None else image_include
        self.image_include = _check_includes(includes)
        #: The server's working directory is the operator's, not the OS's.
        self._cwd = os.path.realpath(os.getcwd())
        self.boxes_created_total = 0
        self.boxes_failed_total = 0
        self.boxes_stopped_total = 0
        self.total_commands_executed = 0
        self.total_exec_errors = 0
        self._states: dict[str, BoxState] = {}
        self._create_lock = anyio.Lock()
        self._recover()
        self.host_mask = hostimage.Mask(self.image_include, [self._cwd, *self.hidden_paths])
        #: Size of a box's disk when its options name none; None: no disk (the layer
        #: shares the home's file system).
        self.default_disk_gb = default_disk_gb
        self.disk_templates = self.home / "disk-templates"
        self._spare_disk = disk.Spare(
            self.home / "disk-spare", self.disk_templates, default_disk_gb
        )
        self._spare_disk.start()
        self._disks: dict[str, int] = {}  # box id -> mount fd of its disk (see ``disk``)
        self._disk_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"BwrapRuntime(home={str(self.home)!r}, boxes={len(self._states)})"

    # -- disks -----------------------------------------------------------------

    def disk_size(self, options: BoxOptions) -> int | None:
        return options.disk_size_gb or self.default_disk_gb

    async def new_layer(self, box_id: str, size_gb: int | None) -> Path:
        """Make a new box's writable layer (on a disk of ``size_gb`` if given): the
        directory that holds its ``upper/`` and ``work/``."""
        box_dir = self.store.box_dir(box_id)
        if not size_gb:
            for sub in ("upper", "work"):
                (box_dir / sub).mkdir()
            return box_dir
        fd = await anyio.to_thread.run_sync(
            self._spare_disk.take, size_gb, disk.image_path(box_dir)
        )
        self._spare_disk.start(delay=0.3)
        if fd is not None:
            self._disks[box_id] = fd
            return disk.layer_path(fd)
        await anyio.to_thread.run_sync(disk.create, box_dir, self.disk_templates, size_gb)
        return await self.layer_dir(box_id)

    async def layer_dir(self, box_id: str) -> Path:
        """The directory holding a box's ``upper/`` and ``work/`` (its disk, mounted
        on first use and kept while the box exists, or the box directory)."""
        box_dir = self.store.box_dir(box_id)
        if not disk.has_disk(box_dir):
            return box_dir
        async with self._disk_lock:
            fd = self._disks.get(box_id)
            if fd is None:
                fd = await anyio.to_thread.run_sync(disk.open_disk, disk.image_path(box_dir))
                self._disks[box_id] = fd
        return disk.layer_path(fd)

    def set_disk(self, box_id: str, fd: int) -> None:
        """Replace a box's mounted disk (snapshot restore) by ``fd``."""
        self.close_disk(box_id)
        self._disks[box_id] = fd

    def close_disk(self, box_id: str) -> None:
        """Unmount a box's disk (the kernel does it once no running box uses it)."""
        fd = self._disks.pop(box_id, None)
        if fd is not None:
            os.close(fd)

    # -- restart ---------------------------------------------------------------

    def _recover(self) -> None:
        """Load every box; boxes that were running come back stopped, leftovers killed."""
        for record in self.store.load_all():
            if record.live is not None or record.status in (BoxStatus.RUNNING, BoxStatus.STOPPING):
                cgroup = BoxCgroup(dirs=list(record.cgroup_dirs), mode=record.cgroup_mode)
                live = record.live
                kill_leftovers(
                    live.init_pid if live else None,
                    live.init_start_time if live else None,
                    cgroup,
                )
                record.live = None
                record.status = BoxStatus.STOPPED
                self.store.save(record)
            self._states[record.id] = BoxState(self, record)
        for d in self.store.boxes_dir.iterdir():  # half-created or half-removed boxes
            if d.is_dir() and not (d / "box.json").exists() and d.name not in self._states:
                shutil.rmtree(d, ignore_errors=True)

    # -- lookup ----------------------------------------------------------------

    def _state(self, box_id: str) -> BoxState:
        state = self._states.get(box_id)
        if state is None:
            raise NotFoundError(f"box {box_id} no longer exists; {self._existing()}")
        return state

    def _existing(self) -> str:
        if not self._states:
            return "there are no boxes; create one first"
        shown = [s.record.name or s.record.id for s in list(self._states.values())[:8]]
        more = len(self._states) - len(shown)
        text = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        return f"existing boxes: {text}"

    def _find(self, box: str) -> BoxState:
        state = self._states.get(box)
        if state is not None:
            return state
        for state in self._states.values():
            if state.record.name == box:
                return state
        raise NotFoundError(f"no box with id or name {box!r}; {self._existing()}")

    # -- Runtime protocol ------------------------------------------------------

    async def info(self) -> RuntimeInfo:
        return RuntimeInfo(
            name="bwrap",
            version=f"bubblewrap {self.tools.bwrap_version}",
            isolation=ISOLATION,
            capabilities=Capabilities(
                snapshots_enabled=True,
                clone_enabled=True,
                export_enabled=True,
                import_enabled=True,
                tty_enabled=True,
                streaming_enabled=True,
                max_cpus=os.cpu_count(),
            ),
            details={
                "bwrap": self.tools.describe_bwrap(),
                "home": "hidden from boxes (as are the server's auth tokens file and any "
                "other hidden path)",
                "overlay": "kernel overlayfs (lower: image, upper: per-box directory), "
                "mounted in a private mount namespace per box",
                "cgroups": self.cgroup_mode,
                "user_namespace": "box uids/gids 0-65535 are host 100000-165535: box root "
                "is capable only inside the box and is 'other' to the "
                "host's files (they show as nobody); the box's own files, "
                "its image directory and volumes show with box ids",
                "tmp": "/tmp is a tmpfs for the box's life (cleared when it stops)",
                "seccomp": "Docker's default profile as a denylist: no new namespaces, "
                "keyctl, bpf, perf_event_open, userfaultfd, io_uring, modules, "
                "reboot, swap, clock, kexec, mount calls (EPERM; clone3 ENOSYS)",
                "hardening": "box root cannot mount; /proc's global knobs are read-only; "
                "/dev nodes are the box's own",
                "weaker_than_a_vm": "the kernel is shared: a kernel bug reachable through "
                "the allowed system calls escapes the box; setns and "
                "personality are not narrowed; /proc shows host-wide "
                "CPU, memory and mount information",
                "image": hostimage.describe(self.image_include),
                "images": "the host's OS (default), rootfs_path directory or OCI image "
                "layout; no registry access",
                "disk": (
                    f"each box's writable layer is an ext4 file system of its "
                    f"disk_size_gb (default {self.default_disk_gb} GiB) in a sparse "
                    "image: a full disk is ENOSPC for that box only"
                    if self.default_disk_gb
                    else "a box's writable layer is an ext4 file system of its "
                    "disk_size_gb when given; otherwise it shares the home's file "
                    "system"
                ),
                "not_enforced": "entrypoint/cmd are stored, not run",
                **self.net_rules.details(),
            },
        )

    async def create(self, options: BoxOptions) -> BwrapBox:
        t0 = time.monotonic()
        validation.check_options_text(options)
        _check_options(options)
        self.net_rules.check(options)
        rootfs.check_options(options)
        _check_volumes(options)
        async with self._create_lock:
            if options.name is not None:
                for state in self._states.values():
                    if state.record.name == options.name:
                        raise AlreadyExistsError(
                            f"a box named {options.name!r} already exists "
                            f"(id {state.record.id}); pick another name or remove it"
                        )
            box_id = secrets.token_hex(6)
            box_dir = self.store.box_dir(box_id)
            try:
                t_img = time.monotonic()
                image = await anyio.to_thread.run_sync(
                    rootfs.resolve, options, self.store.images_dir
                )
                image_ms = int((time.monotonic() - t_img) * 1000)
                t_fs = time.monotonic()
                box_dir.mkdir(parents=True)
                for sub in ("merged", "snapshots"):
                    (box_dir / sub).mkdir()
                await self.new_layer(box_id, self.disk_size(options))
                fs_ms = int((time.monotonic() - t_fs) * 1000)
                limits = BoxLimits(
                    cpus=options.cpus or self.default_cpus,
                    memory_mib=options.memory_mib or self.default_memory_mib,
                    max_processes=self.default_max_processes,
                    enforcement=self.cgroup_mode if self.cgroup_mode != "none" else None,
                )
                cgroup = BoxCgroup.plan(box_id, self.cgroup_mode)
                record = BoxRecord(
                    id=box_id,
                    name=options.name,
                    options=options,
                    image=image.display,
                    lower=str(image.lower),
                    limits=limits,
                    cgroup_dirs=cgroup.dirs,
                    cgroup_mode=cgroup.mode,
                )
                record.boot.image_prepare_ms = image_ms
                record.boot.filesystem_setup_ms = fs_ms
                record.boot.total_create_ms = int((time.monotonic() - t0) * 1000)
                self.store.save(record)
            except BaseException:
                self.boxes_failed_total += 1
                self.close_disk(box_id)
                shutil.rmtree(box_dir, ignore_errors=True)
                raise
            self._states[box_id] = BoxState(self, record)
            self.boxes_created_total += 1
        return BwrapBox(self, box_id)

    async def get(self, box: str) -> BwrapBox:
        return BwrapBox(self, self._find(box).record.id)

    async def list(self) -> list[BoxInfo]:
        return [await BwrapBox(self, i).info() for i in list(self._states)]

    async def remove(self, box: str, force: bool = False) -> None:
        state = self._find(box)
        async with state.lock:
            state.refresh()
            if state.sandbox is not None:
                if not force:
                    raise InvalidStateError(
                        f"box {state.record.name or state.record.id} is running; stop it "
                        "first or remove it with force",
                        box=state.record.name or state.record.id,
                        required_state="stopped",
                    )
                await state.stop(self, 0)
            self._states.pop(state.record.id, None)
            box_dir = self.store.box_dir(state.record.id)
            # Make it "not a box" first, so a crash mid-removal leaves no half box.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(box_dir / "box.json")
            self.close_disk(state.record.id)
            await anyio.to_thread.run_sync(_rmtree, box_dir)
            await anyio.to_thread.run_sync(state.cgroup.remove)

    async def metrics(self) -> RuntimeMetrics:
        running = 0
        for state in self._states.values():
            state.refresh()
            running += state.sandbox is not None
        return RuntimeMetrics(
            boxes_created_total=self.boxes_created_total,
            boxes_failed_total=self.boxes_failed_total,
            boxes_stopped_total=self.boxes_stopped_total,
            num_running_boxes=running,
            total_commands_executed=self.total_commands_executed,
            total_exec_errors=self.total_exec_errors,
        )

    async def import_box(self, archive: Path, name: str | None = None) -> BwrapBox:
        check_nul("archive", os.fspath(archive))
        check_nul("name", name)
        box_id = await snapshots.import_box(self, archive, name)
        return BwrapBox(self, box_id)

    async def aclose(self) -> None:
        """Stop the running boxes (their processes belong to this runtime); keep them."""
        with anyio.CancelScope(shield=True):
            try:
                for state in list(self._states.values()):
                    async with state.lock:
                        await state.stop(self, 0)
            finally:
                for box_id in list(self._disks):
                    self.close_disk(box_id)
                self._spare_disk.close()
                self.host_mask.close()
                self.store.release()

    # -- network ---------------------------------------------------------------

    def host_port_refused(self, port: int) -> str | None:
        """Why the host's loopback ``port`` stays closed to every box's proxy, if it does."""
        exposed = {p for state in self._states.values() for p in state.exposed_host_ports()}
        return self.net_rules.host_port_refused(port, exposed)

    # -- used by snapshots/import ---------------------------------------------

    def _add(self, record: BoxRecord) -> BoxState:
        state = BoxState(self, record)
        self._states[record.id] = state
        self.boxes_created_total += 1
        return state


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        # Overlay work dirs can hold root-only 0000 dirs; retry after chmod.
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(path, ignore_errors=True)


def _check_options(options: BoxOptions) -> None:
    """Re-check what the model checks (callers can bypass it) and what the host allows."""
    if options.name is not None:
        check_name(options.name, "box")
    host_cpus = os.cpu_count() or 1
    if options.cpus is not None and not (isinstance(options.cpus, int) and options.cpus >= 1):
        raise InvalidArgumentError(f"cpus must be a whole number >= 1, not {options.cpus!r}")
    if options.cpus is not None and options.cpus > host_cpus:
        raise InvalidArgumentError(
            f"cpus={options.cpus} is more than this host has ({host_cpus}); "
            f"pass at most {host_cpus}"
        )
    if options.memory_mib is not None and not (
        isinstance(options.memory_mib, int) and options.memory_mib >= 128
    ):
        raise InvalidArgumentError(
            f"memory_mib must be a whole number >= 128, not {options.memory_mib!r}"
        )
    if options.disk_size_gb is not None and not (
        isinstance(options.disk_size_gb, int) and options.disk_size_gb >= 1
    ):
        raise InvalidArgumentError(f"disk_size_gb must be >= 1, not {options.disk_size_gb!r}")
    if options.image and options.rootfs_path:
        raise InvalidArgumentError(
            "pass either `image` or `rootfs_path`, not both (rootfs_path is a local "
            "rootfs directory or OCI layout; image a registry reference)"
        )
    if options.working_dir is not None and not options.working_dir.startswith("/"):
        raise InvalidArgumentError(
            f"working_dir {options.working_dir!r} must be an absolute path in the box"
        )


def _check_includes(paths: Sequence[Path | str]) -> list[str]:
    """Operator-named host paths to show in default-image boxes: absolute, existing."""
    found: list[str] = []
    for path in paths:
        text = os.fspath(path)
        if not os.path.isabs(text) or not os.path.lexists(text):
            raise InvalidArgumentError(
                f"image include {text!r} must be an existing absolute host path "
                f"(from --image-include or {hostimage.INCLUDE_ENV})"
            )
        found.append(os.path.normpath(text))
    return found


def _check_volumes(options: BoxOptions) -> None:
    for volume in options.volumes or []:
        if not os.path.isabs(volume.host_path) or not os.path.exists(volume.host_path):
            raise InvalidArgumentError(
                f"volume host_path {volume.host_path!r} must be an existing absolute path"
            )
        if not volume.guest_path.startswith("/") or ".." in volume.guest_path.split("/"):
            raise InvalidArgumentError(
                f"volume guest_path {volume.guest_path!r} must be an absolute path without '..'"
            )
