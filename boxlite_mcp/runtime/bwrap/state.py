"""What the runtime keeps on disk, so a new process finds the same boxes.

Layout under the runtime home::

    boxes/<id>/box.json          BoxRecord (atomic writes)
    boxes/<id>/upper/            the box's writable layer (overlayfs upperdir)
    boxes/<id>/work/             overlayfs workdir
    boxes/<id>/merged/           mount point (mounted only inside the box's namespace)
    boxes/<id>/snapshots/<name>/ snapshot.json + upper/
    boxes/<id>/init.log          bubblewrap's stderr, for start errors
    images/<digest>/rootfs/      unpacked OCI image layouts (shared, read-only)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from ...settings import HOME_ENV
from ..errors import UnavailableError
from ..types import BootTiming, BoxLimits, BoxOptions, BoxStatus

RECORD_VERSION = 1


class HomeInUseError(UnavailableError):
    """Another runtime holds this home's lock (a caller may try another home)."""


def default_home() -> Path:
    """``BOXLITE_HOME``, else ``$XDG_DATA_HOME/boxlite-mcp``, else ~/.local/share/boxlite-mcp."""
    if env := os.environ.get(HOME_ENV):
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "boxlite-mcp"


def now() -> datetime:
    return datetime.now(UTC)


class LiveRecord(BaseModel):
    """Where a running box's processes are, to clean them up after a crash."""

    init_pid: int
    init_start_time: int  # /proc/<pid>/stat field 22: tells a reused pid apart


class BoxRecord(BaseModel):
    """Everything known about one box."""

    model_config = ConfigDict(extra="ignore")

    version: int = RECORD_VERSION
    id: str
    name: str | None = None
    options: BoxOptions
    image: str  # what BoxInfo.image shows: "host" or the rootfs path
    lower: str  # the overlay lower directory ("/" for the host image)
    status: BoxStatus = BoxStatus.CONFIGURED
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime | None = None
    limits: BoxLimits = Field(default_factory=BoxLimits)
    cgroup_dirs: list[str] = Field(default_factory=list)
    cgroup_mode: str = "none"
    live: LiveRecord | None = None
    boot: BootTiming = Field(default_factory=BootTiming)
    commands_executed_total: int = 0
    exec_errors_total: int = 0


def _lock_home(home: Path) -> IO[bytes]:
    """Hold the home for this runtime's life: one runtime per home.

    A second one would take the first's running boxes for leftovers of a crash and
    kill them, and its registry would adopt them (two agents on one machine, both on
    the default home).
    """
    handle = open(home / ".lock", "a+b")  # held for the runtime's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise HomeInUseError(
            f"another boxlite-mcp runtime is using the home {home} (its boxes would be "
            "taken for crash leftovers). Give each server its own home: --home DIR or "
            "BOXLITE_HOME."
        ) from None
    return handle


class Store:
    """The runtime home: box directories and their records."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.boxes_dir = home / "boxes"
        self.images_dir = home / "images"
        # Root only: a box's upper layer can hold set-uid files its root made, and
        # its device nodes; no other host user may reach them.
        for d in (home, self.boxes_dir, self.images_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.boxes_dir, self.images_dir):
            os.chmod(d, 0o700)
        self._lock = _lock_home(home)

    def release(self) -> None:
        """Let another runtime use this home (the lock also goes with the process)."""
        self._lock.close()

    def box_dir(self, box_id: str) -> Path:
        return self.boxes_dir / box_id

    def save(self, record: BoxRecord) -> None:
        record.updated_at = now()
        write_json_atomic(self.box_dir(record.id) / "box.json", record.model_dump(mode="json"))

    def load_all(self) -> list[BoxRecord]:
        records: list[BoxRecord] = []
        for d in sorted(self.boxes_dir.iterdir()):
            path = d / "box.json"
            if not path.is_file():
                continue  # half-created or half-removed: not a box
            try:
                records.append(BoxRecord.model_validate_json(path.read_bytes()))
            except ValueError:
                continue
        return records


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so that readers see the old or the new file, never a torn one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in ticks), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data.rsplit(")", 1)[1].split()[19])
