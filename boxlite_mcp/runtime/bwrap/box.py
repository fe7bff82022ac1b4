"""A bwrap box handle: lifecycle, exec, files, snapshots, clone, export, metrics.

A handle is a view: every method looks the box up in its runtime again, so a
handle of a removed box raises NotFoundError and two handles of one box agree.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ..base import Box, Execution
from ..errors import (
    BoxliteError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    attach_unsupported,
)
from ..shared import validation
from ..types import (
    BoxInfo,
    BoxMetrics,
    BoxStatus,
    ExecRequest,
    ExposedPort,
    NetworkSpec,
    SnapshotInfo,
    check_name,
    check_nul,
)
from . import files, network, seccomp, snapshots
from .boxfs import BoxRoot, normalize
from .execution import BwrapExecution, open_pty, spawn
from .sandbox import JOIN_SCRIPT, BoxSpec, launch
from .state import LiveRecord
from .users import resolve_user

if TYPE_CHECKING:
    from .runtime import BoxState, BwrapRuntime

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Variables the host-side helpers (sh, nsenter: root, outside the box) must not
#: see, as they change how a program loads or what it reads (LD_PRELOAD would
#: run a library of the caller's choosing as host root). When an exec asks for
#: them, the box's own /bin/sh sets them, inside the box (``ENV_SHIM``).
HELPER_UNSAFE = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TZDIR",
        "GLIBC_TUNABLES",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "CDPATH",
        "PS4",
    }
)
HELPER_UNSAFE_PREFIXES = ("LD_", "MALLOC_")
ENV_SHIM = 'while [ "$1" != -- ]; do export "$1"; shift; done; shift; exec "$@"'


def split_env(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(what the host helpers may carry, what only the box may set)."""
    safe: dict[str, str] = {}
    boxed: dict[str, str] = {}
    for key, value in env.items():
        if key in HELPER_UNSAFE or key.startswith(HELPER_UNSAFE_PREFIXES):
            boxed[key] = value
        else:
            safe[key] = value
    return safe, boxed


class BwrapBox:
    """One box of a :class:`BwrapRuntime` (implements ``base.Box``)."""

    def __init__(self, runtime: BwrapRuntime, box_id: str) -> None:
        self._runtime = runtime
        self._id = box_id

    def __repr__(self) -> str:
        return f"BwrapBox(id={self._id!r}, name={self.name!r})"

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str | None:
        state = self._runtime._states.get(self._id)
        return state.record.name if state else None

    @property
    def _state(self) -> BoxState:
        return self._runtime._state(self._id)

    # -- lifecycle -------------------------------------------------------------

    async def info(self) -> BoxInfo:
        state = self._state
        state.refresh()
        r = state.record
        return BoxInfo(
            id=r.id,
            name=r.name,
            status=r.status,
            image=r.image,
            cpus=r.limits.cpus,
            memory_mib=r.limits.memory_mib,
            created_at=r.created_at,
            updated_at=r.updated_at,
            pid=state.sandbox.init_pid if state.sandbox else None,
            network=r.options.network or NetworkSpec(mode="disabled"),
            limits=r.limits,
            network_status=network.status(state.network, state.exposed),
        )

    async def expose(self, port: int) -> ExposedPort:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidArgumentError(
                f"port {port!r} is not a TCP port; pass the port (1-65535) a service in box "
                f"{self.name or self._id} listens on"
            )
        state = await self._ensure_running()
        async with state.lock:
            assert state.sandbox is not None
            return await network.expose(
                state.exposed, state.sandbox.init_pid, port, self._runtime.net_rules.expose_host
            )

    async def start(self) -> None:
        state = self._state
        async with state.lock:
            await self._start_locked(state)

    async def _start_locked(self, state: BoxState) -> None:
        state.refresh()
        if state.sandbox is not None:
            return
        r = state.record
        rt = self._runtime
        t0 = time.monotonic()
        state.cgroup.create(r.limits)
        enabled = bool(r.options.network and r.options.network.mode == "enabled")
        layer = await rt.layer_dir(r.id)
        netfiles = (
            network.prepare_files(rt.store.box_dir(r.id), layer, r.options, Path(r.lower))
            if enabled
            else None
        )
        mask = await anyio.to_thread.run_sync(rt.host_mask.fd) if r.lower == "/" else None
        spec = BoxSpec(
            box_dir=rt.store.box_dir(r.id),
            lower=Path(r.lower),
            hostname=(r.name or r.id)[:63],
            network=enabled,
            volumes=[(v.host_path, v.guest_path, v.read_only) for v in r.options.volumes or []],
            cgroup=state.cgroup,
            hidden=rt.hidden_paths,
            mask=mask,
            layer=layer,
            ro_files=netfiles.ro_files if netfiles else (),
        )
        try:
            sandbox = await launch(spec, rt.tools)
            if netfiles is not None:  # before any process of the box runs: its only way out
                try:
                    rules = rt.net_rules
                    state.network = await network.BoxNetwork.start(
                        sandbox.init_pid,
                        rules.policy(r.options),
                        rt.host_port_refused,
                        rules.substitution(r.options),
                        netfiles.interception(rules.net_ca_file),
                    )
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await sandbox.stop(0)
                    raise
        except BaseException:
            r.status = BoxStatus.FAILED if r.status is BoxStatus.CONFIGURED else r.status
            rt.boxes_failed_total += 1
            state.cgroup.remove()
            rt.store.save(r)
            raise
        state.sandbox = sandbox
        r.live = LiveRecord(init_pid=sandbox.init_pid, init_start_time=sandbox.init_start_time)
        r.status = BoxStatus.RUNNING
        if r.boot.box_spawn_ms is None:
            r.boot.box_spawn_ms = int((time.monotonic() - t0) * 1000)
        rt.store.save(r)

    async def stop(self, timeout_seconds: float | None = None) -> None:
        state = self._state
        async with state.lock:
            await state.stop(self._runtime, timeout_seconds)
        if state.record.options.auto_remove:
            await self._runtime.remove(self._id, force=True)

    async def _ensure_running(self) -> BoxState:
        state = self._state
        state.refresh()
        if state.sandbox is None:
            async with state.lock:
                await self._start_locked(state)
        if state.sandbox is None:  # pragma: no cover - start raises instead
            raise InternalError(f"box {self._id} did not start")
        return state

    # -- exec ------------------------------------------------------------------

    async def attach(
        self,
        execution_id: str,
        *,
        stdout_offset: int = 0,
        stderr_offset: int = 0,
        timeout_seconds: float | None = None,
    ) -> Execution:
        raise attach_unsupported("bwrap", execution_id)

    async def exec(self, request: ExecRequest) -> BwrapExecution:
        state = self._state
        try:
            validation.check_request_text(request)  # before anything is spawned
            return await self._exec(request)
        except BoxliteError:
            state.record.exec_errors_total += 1
            self._runtime.total_exec_errors += 1
            raise

    async def _exec(self, request: ExecRequest) -> BwrapExecution:
        state = await self._ensure_running()
        sandbox = state.sandbox
        assert sandbox is not None
        rt = self._runtime
        r = state.record
        opts = r.options
        workdir = normalize(request.working_dir or opts.working_dir or "/")
        with BoxRoot.of_pid(sandbox.init_pid) as root:
            user = resolve_user(request.user or opts.user, root)
            env = {"PATH": DEFAULT_PATH, "HOME": user.home, "HOSTNAME": r.name or r.id}
            if request.tty:
                env["TERM"] = "xterm-256color"
            if state.network is not None:
                env.update(state.network.env())
            env.update(opts.env or {})
            env.update(request.env or {})
            _find_program(root, request.command, workdir, env["PATH"])
            env, boxed = split_env(env)
            command = [request.command, *request.args]
            if boxed:
                command = _env_shim(root, boxed, command)
            try:
                wd_fd = root.open_dir(workdir)
            except OSError as exc:
                raise InvalidArgumentError(
                    f"working directory {workdir!r} does not exist in box {self._id} "
                    f"({exc.strerror}); create it first or pass an existing directory"
                ) from exc
            pty = _box_pty(root) if request.tty else None
        tools = rt.tools
        me = f"/proc/{os.getpid()}/fd"
        argv = [tools.sh, "-c", JOIN_SCRIPT, "boxlite-exec", *state.cgroup.procs_files(), "--"]
        if request.tty:
            argv += [tools.setsid, "--ctty"]
        argv += [
            # Paths into this process's fd table: nothing extra leaks into the box.
            tools.nsenter,
            "-t",
            str(sandbox.init_pid),
            f"--user={me}/{sandbox.userns_fd}",
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-r",
            f"--wd={me}/{wd_fd}",
            "-S",
            str(user.uid),
            "-G",
            str(user.gid),
            "--",
            *command,
        ]
        exec_id = "ex-" + secrets.token_hex(8)
        try:
            execution = spawn(
                argv,
                env=env,
                pass_fds=(),
                exec_id=exec_id,
                tty=request.tty,
                pty=pty,
                timeout=request.timeout_seconds,
                on_exit=state.on_exit,
                oom_check=state.oom_check,
                keep_fds=(wd_fd,),
                starter=seccomp.run_filtered,  # filtered before nsenter joins the box
            )
        except BaseException as exc:
            os.close(wd_fd)
            if isinstance(exc, OSError):
                raise InternalError(f"could not start the command: {exc}") from exc
            raise
        r.commands_executed_total += 1
        rt.total_commands_executed += 1
        state.executions.add(execution)
        return execution

    # -- files -----------------------------------------------------------------

    async def copy_in(self, host_src: Path, box_dest: str) -> None:
        check_nul("host_src", os.fspath(host_src))
        files.check_box_path(box_dest)
        state = await self._ensure_running()
        assert state.sandbox is not None
        await files.copy_in(state.sandbox.init_pid, host_src, box_dest)

    async def copy_out(self, box_src: str, host_dest: Path) -> None:
        files.check_box_path(box_src)
        check_nul("host_dest", os.fspath(host_dest))
        state = await self._ensure_running()
        assert state.sandbox is not None
        await files.copy_out(state.sandbox.init_pid, box_src, host_dest, self._runtime.copy_limits)

    async def read_file(self, box_src: str, max_bytes: int) -> bytes:
        files.check_box_path(box_src)
        state = await self._ensure_running()
        assert state.sandbox is not None
        return await files.read_file(state.sandbox.init_pid, box_src, max_bytes)

    # -- metrics ---------------------------------------------------------------

    async def metrics(self) -> BoxMetrics:
        state = self._state
        state.refresh()
        r = state.record
        cpu_percent: float | None = None
        memory: int | None = None
        if state.sandbox is not None:
            memory = state.cgroup.memory_bytes()
            cpu_percent = await state.cpu_percent()
        counters = state.network.counters if state.network is not None else None
        return BoxMetrics(
            **r.boot.model_dump(),
            commands_executed_total=r.commands_executed_total,
            exec_errors_total=r.exec_errors_total,
            cpu_percent=cpu_percent,
            memory_bytes=memory,
            network_bytes_sent=counters.bytes_sent if counters else None,
            network_bytes_received=counters.bytes_received if counters else None,
            network_tcp_connections=counters.tcp_connections if counters else None,
            network_tcp_errors=counters.tcp_errors if counters else None,
        )

    # -- snapshots, clone, export ---------------------------------------------

    async def snapshot_create(self, name: str) -> SnapshotInfo:
        check_name(name, "snapshot")
        state = self._state
        async with state.lock:
            return await snapshots.create(self._runtime, state, name)

    async def snapshot_list(self) -> list[SnapshotInfo]:
        return snapshots.list_(self._runtime, self._state)

    async def snapshot_get(self, name: str) -> SnapshotInfo:
        check_name(name, "snapshot")
        return snapshots.get(self._runtime, self._state, name)

    async def snapshot_remove(self, name: str) -> None:
        check_name(name, "snapshot")
        state = self._state
        async with state.lock:
            await snapshots.remove(self._runtime, state, name)

    async def snapshot_restore(self, name: str) -> None:
        check_name(name, "snapshot")
        state = self._state
        async with state.lock:
            await snapshots.restore(self._runtime, state, name)

    async def clone(self, name: str | None = None) -> Box:
        boxes = await self.clone_many(1, [name] if name else None)
        return boxes[0]

    async def clone_many(self, count: int, names: list[str] | None = None) -> list[Box]:
        validation.check_all("names", names or [])
        state = self._state
        async with state.lock:
            ids = await snapshots.clone(self._runtime, state, count, names)
        return [BwrapBox(self._runtime, i) for i in ids]

    async def export(self, dest: Path) -> Path:
        check_nul("dest", os.fspath(dest))
        state = self._state
        async with state.lock:
            return await snapshots.export(self._runtime, state, dest)


def _env_shim(root: BoxRoot, boxed: dict[str, str], command: list[str]) -> list[str]:
    """The command wrapped so that the box's /bin/sh sets ``boxed`` in the box."""
    for key in boxed:
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise InvalidArgumentError(f"environment variable name {key!r} is invalid")
    st = root.stat("/bin/sh")
    if st is None or not stat.S_ISREG(st.st_mode):
        names = ", ".join(sorted(boxed))
        raise InvalidArgumentError(
            f"{names} can only be set in a box that has /bin/sh (these variables are "
            "applied inside the box, never by the runtime's own helpers)"
        )
    return [
        "/bin/sh",
        "-c",
        ENV_SHIM,
        "boxlite-env",
        *[f"{k}={v}" for k, v in boxed.items()],
        "--",
        *command,
    ]


def _box_pty(root: BoxRoot) -> tuple[int, int] | None:
    """A pty from the box's own devpts (so ``tty`` names it inside); None if it has none."""
    try:
        ptmx = root.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        return open_pty(ptmx)
    except OSError:
        return None


def _find_program(root: BoxRoot, command: str, workdir: str, path: str) -> str:
    """The program's path in the box, as execvp would find it; NotFoundError if none."""
    if "\0" in command:
        raise InvalidArgumentError("the command contains a NUL byte")
    if "/" in command:
        candidates = [command if command.startswith("/") else f"{workdir}/{command}"]
    else:
        candidates = [f"{d or '.'}/{command}" for d in path.split(":")]
    for candidate in candidates:
        st = root.stat(candidate if candidate.startswith("/") else f"{workdir}/{candidate}")
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    where = "" if "/" in command else f" (searched PATH={path})"
    raise NotFoundError(
        f"program {command!r} not found in the box{where}; "
        "install it in the box or pass its full path"
    )
