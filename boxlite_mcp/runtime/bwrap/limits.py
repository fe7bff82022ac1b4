"""Resource limits for a box: cgroups v1 (this host kind), v2 where present.

Each box gets one cgroup per controller, nested under the cgroup the runtime
itself runs in (so a supervisor's own accounting still covers the boxes), at
``<controller>/<own path>/boxlite-mcp/<box id>``. Every process of the box joins
it before it runs (see ``sandbox.JOIN_SCRIPT``), so limits cover the box's init
and every exec, and ``kill_all`` finds every process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..types import BoxLimits

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
CPU_PERIOD_US = 100_000


def cgroup_mode() -> str:
    """``cgroup-v1``, ``cgroup-v2`` or ``none`` (what this host offers root)."""
    if os.geteuid() != 0:
        return "none"
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (
        CGROUP_ROOT / "pids"
    ).is_dir():
        return "cgroup-v1"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return "cgroup-v2"
    return "none"


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller (and ``""`` for v2)."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                paths[c] = path
    return paths


@dataclass
class BoxCgroup:
    """The cgroup directories of one box; ``dirs`` is persisted for clean-up."""

    dirs: list[str] = field(default_factory=list)
    mode: str = "none"

    @classmethod
    def plan(cls, box_id: str, mode: str) -> BoxCgroup:
        own = _own_paths()
        dirs: list[str] = []
        if mode == "cgroup-v1":
            for c in V1_CONTROLLERS:
                base = CGROUP_ROOT / c
                if not base.is_dir():
                    continue
                rel = own.get(c, "/").lstrip("/")
                dirs.append(str(base / rel / "boxlite-mcp" / box_id))
        elif mode == "cgroup-v2":
            rel = own.get("", "/").lstrip("/")
            dirs.append(str(CGROUP_ROOT / rel / "boxlite-mcp" / box_id))
        return cls(dirs=dirs, mode=mode)

    def _dir(self, controller: str) -> Path | None:
        for d in self.dirs:
            p = Path(d)
            if self.mode == "cgroup-v2" or p.parts[4:5] == (controller,):
                return p
        return None

    def create(self, limits: BoxLimits) -> None:
        """Create the directories and write the limits (idempotent)."""
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)
        if self.mode == "cgroup-v1":
            self._apply_v1(limits)
        elif self.mode == "cgroup-v2":
            self._apply_v2(limits)

    def _apply_v1(self, limits: BoxLimits) -> None:
        mem = self._dir("memory")
        if mem is not None:
            if limits.memory_mib:
                _write(mem / "memory.limit_in_bytes", str(limits.memory_mib * 1024 * 1024))
                # No swap for the box: the memory limit is the limit.
                with contextlib.suppress(OSError):
                    _write(
                        mem / "memory.memsw.limit_in_bytes", str(limits.memory_mib * 1024 * 1024)
                    )
                with contextlib.suppress(OSError):
                    _write(mem / "memory.swappiness", "0")
        cpu = self._dir("cpu")
        if cpu is not None and limits.cpus:
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(limits.cpus * CPU_PERIOD_US))
        pids = self._dir("pids")
        if pids is not None and limits.max_processes:
            _write(pids / "pids.max", str(limits.max_processes))

    def _apply_v2(self, limits: BoxLimits) -> None:
        d = Path(self.dirs[0])
        if limits.memory_mib:
            _write(d / "memory.max", str(limits.memory_mib * 1024 * 1024))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
        if limits.cpus:
            _write(d / "cpu.max", f"{limits.cpus * CPU_PERIOD_US} {CPU_PERIOD_US}")
        if limits.max_processes:
            _write(d / "pids.max", str(limits.max_processes))

    def procs_files(self) -> list[str]:
        """Files a process writes its pid into to join the box."""
        return [d + "/cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in Path(d, "cgroup.procs").read_text().split())
        return found

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the box's cgroups until none is left."""
        deadline = time.monotonic() + timeout
        freezer = self._dir("freezer") if self.mode == "cgroup-v1" else None
        while True:
            pids = self.pids()
            if not pids:
                return
            if freezer is not None:  # frozen processes cannot fork while we kill them
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "FROZEN")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "THAWED")
            if time.monotonic() > deadline:
                log.warning("processes %s of a box survived SIGKILL", sorted(pids))
                return
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and remove the directories (children first)."""
        if not self.dirs:
            return
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy: zombies not yet reaped
                    time.sleep(0.01)

    # Metrics ---------------------------------------------------------------

    def memory_bytes(self) -> int | None:
        name = "memory.usage_in_bytes" if self.mode == "cgroup-v1" else "memory.current"
        d = self._dir("memory")
        return _read_int(d / name) if d is not None else None

    def cpu_usage_ns(self) -> int | None:
        if self.mode == "cgroup-v1":
            d = self._dir("cpuacct")
            return _read_int(d / "cpuacct.usage") if d is not None else None
        d = self._dir("cpu")
        if d is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            for line in (d / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) * 1000
        return None

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in the box."""
        d = self._dir("memory")
        if d is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            name = "memory.oom_control" if self.mode == "cgroup-v1" else "memory.events"
            for line in (d / name).read_text().splitlines():
                key, value = line.split()
                if key == "oom_kill":
                    return int(value)
        return 0


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
