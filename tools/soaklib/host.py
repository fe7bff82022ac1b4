"""What bwrap runtime homes left on this host, seen from outside every server.

A box of the bwrap runtime exists in four places: its record under
``<home>/boxes/<id>/``, its processes (the launch chain ``sh``/``unshare``/``bwrap``,
the box's PID 1, exec helpers, everything run inside), its overlay mount (in a
private mount namespace held by those processes) and its cgroups
(``<controller>/<path>/boxlite-mcp/<id>``). ``scan`` looks at all four for the
given homes and box ids, from ``/proc`` and ``/sys/fs/cgroup``, without asking
any server; ``runtime_boxes`` asks a ``BwrapRuntime`` opened on the home once its
server is gone, as a restarted server would.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from boxlite_mcp.runtime.bwrap.limits import BoxCgroup, cgroup_mode

SERVER_MARKER = b"boxlite_mcp"


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: str
    box: str | None = None  # the box it belongs to, when its cgroup or command line says


@dataclass
class Leftovers:
    """Everything of the scanned homes that still exists."""

    records: list[str] = field(default_factory=list)  # box ids with a box.json
    box_dirs: list[str] = field(default_factory=list)  # any directory under boxes/
    processes: list[Proc] = field(default_factory=list)  # box processes (not servers)
    servers: list[Proc] = field(default_factory=list)  # boxlite_mcp server processes
    mounts: list[str] = field(default_factory=list)  # overlay mounts of boxes (upper dirs)
    cgroups: list[str] = field(default_factory=list)  # cgroup directories of known boxes

    @property
    def clean(self) -> bool:
        """No box anywhere (server processes are judged by the caller)."""
        return not (self.records or self.box_dirs or self.processes or self.mounts or self.cgroups)

    def summary(self) -> str:
        return (
            f"records={len(self.records)} dirs={len(self.box_dirs)} "
            f"processes={len(self.processes)} servers={len(self.servers)} "
            f"mounts={len(self.mounts)} cgroups={len(self.cgroups)}"
        )


def box_dirs(home: Path) -> tuple[list[str], list[str]]:
    """(ids with a record, every directory) under ``home/boxes``."""
    root = home / "boxes"
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return [], []
    dirs = [d.name for d in entries if d.is_dir()]
    records = [d.name for d in entries if (d / "box.json").is_file()]
    return records, dirs


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _state(pid: str) -> str:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return "?"
    return stat.rsplit(b")", 1)[1].split()[0].decode()


def _pids() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def scan(
    homes: Iterable[Path], box_ids: Iterable[str] = (), exclude: Iterable[int] = ()
) -> Leftovers:
    """Look for anything of ``homes`` (and of the boxes ``box_ids``) on this host."""
    home_list = [Path(h).resolve() for h in homes]
    home_bytes = [str(h).encode() for h in home_list]
    found = Leftovers()
    for home in home_list:
        records, dirs = box_dirs(home)
        found.records += records
        found.box_dirs += dirs
    ids = {*box_ids, *found.box_dirs}
    ordered = sorted(ids)
    cgroup_marks = [f"/boxlite-mcp/{i}".encode() for i in ordered]
    skip = {os.getpid(), *exclude}
    seen_ns: set[bytes] = set()
    mount_marks = [*home_bytes, *(f"/boxes/{i}/".encode() for i in ordered)]
    mount_points: set[str] = set()
    for pid in _pids():
        if int(pid) in skip or _state(pid) in ("Z", "X", "?"):
            continue
        cmdline = _read(f"/proc/{pid}/cmdline")
        cgroup = _read(f"/proc/{pid}/cgroup")
        box = next(
            (
                i
                for i, m in zip(ordered, cgroup_marks, strict=True)
                if m in cgroup or m in cmdline or f"/boxes/{i}/".encode() in cmdline
            ),
            None,
        )
        if box is not None or any(h in cmdline for h in home_bytes):
            proc = Proc(int(pid), cmdline.replace(b"\0", b" ").decode(errors="replace")[:300], box)
            (found.servers if SERVER_MARKER in cmdline else found.processes).append(proc)
        try:
            ns = os.readlink(f"/proc/{pid}/ns/mnt").encode()
        except OSError:
            continue
        if ns in seen_ns:
            continue
        seen_ns.add(ns)
        for line in _read(f"/proc/{pid}/mountinfo").splitlines():
            # A box's overlay root, in whichever mount namespace holds it (one per upper dir).
            if b" - overlay " in line and any(m in line for m in mount_marks):
                upper = re.search(rb"upperdir=([^,\s]+)", line)
                where = (upper.group(1) if upper else line.split()[4]).decode(errors="replace")
                # A box on its own disk has an upper dir reached through a file descriptor
                # (/proc/PID/fd/N/upper): name the box the line belongs to as well.
                owner = next((i for i in ordered if f"/boxes/{i}/".encode() in line), None)
                if owner is not None and f"/{owner}/" not in where:
                    where = f"{where} (box /boxes/{owner}/)"
                mount_points.add(where)
    found.mounts = sorted(mount_points)
    mode = cgroup_mode()
    for box_id in sorted(ids):
        for directory in BoxCgroup.plan(box_id, mode).dirs:
            if os.path.isdir(directory):
                found.cgroups.append(directory)
    return found


async def runtime_boxes(home: Path, *, remove: bool = False, patience: float = 15.0) -> list[str]:
    """The box ids a ``BwrapRuntime`` opened on ``home`` lists, as a restarted server would.

    A runtime holds its home for its life, so this waits (up to ``patience``) for the
    server using it to be gone. Opening it recovers the home (boxes left running are
    killed and marked stopped); ``remove`` then removes every box it listed.
    """
    from boxlite_mcp.runtime.bwrap import BwrapRuntime
    from boxlite_mcp.runtime.errors import UnavailableError

    deadline = time.monotonic() + patience
    while True:
        try:
            runtime = BwrapRuntime(home=home)
            break
        except UnavailableError:  # still held by a server that is going away
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.1)
    try:
        listed = sorted(info.id for info in await runtime.list())
        if remove:
            for box_id in listed:
                await runtime.remove(box_id, force=True)
        return listed
    finally:
        await runtime.aclose()
