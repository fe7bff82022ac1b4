"""The machine and software a run happened on, for the lines above the table."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "boxlite-mcp",
    "boxlite",
    "mcp",
    "httpx",
    "httpx-ws",
    "httpx-sse",
    "uvicorn",
    "starlette",
    "pydantic",
    "anyio",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _run(*argv: str) -> str:
    """The first line a command prints ("" when it prints nothing), or "unavailable"."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    if done.returncode != 0:
        return "unavailable"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _bubblewrap() -> str:
    """The ``bwrap`` the bwrap runtime runs (the system's, else the bundled one)."""
    from boxlite_mcp.runtime.bwrap.host import bwrap_version, find_bwrap
    from boxlite_mcp.runtime.errors import UnavailableError

    try:
        binary = find_bwrap()
        return binary.describe(bwrap_version(binary.path))
    except UnavailableError as exc:
        return f"unavailable ({exc})"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _virtualisation() -> str:
    """Whether this host could boot a micro-VM (it decides which runtime is the default)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    kvm = Path("/dev/kvm").exists()
    vmx = " vmx" in flags or " svm" in flags
    return f"/dev/kvm {'present' if kvm else 'absent'}, vmx/svm {'yes' if vmx else 'no'}"


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return os.getloadavg()[0]


def describe(repo: Path, load_at_start: float | None = None) -> list[str]:
    """Markdown bullet lines: CPU, cores, memory, kernel, OS, Python, versions, commit, load."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical" + (f" ({affinity} usable)" if affinity else "")
    commit = _run("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    dirty = _run("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")
    if commit != "unavailable" and dirty not in ("", "unavailable"):
        commit += " (working tree has uncommitted changes)"
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {_cpu_model()}, {cores}; memory {_memory()}; {_virtualisation()}",
        f"- kernel: {platform.release()} ({platform.machine()}); OS: {_os_name()}",
        f"- Python {platform.python_version()} ({sys.implementation.name}); "
        f"bubblewrap: {_bubblewrap()}",
        f"- packages: {versions}",
        f"- boxlite-mcp commit: {commit}",
        "- load average (1 min): "
        + (f"{load_at_start:.2f} at start, " if load_at_start is not None else "")
        + f"{load_average():.2f} at end (other work on the machine skews every figure)",
    ]
