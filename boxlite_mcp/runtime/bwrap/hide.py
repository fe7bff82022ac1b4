"""Host paths no box may see: the runtime home, the auth tokens file, and more.

The default image is the host's root as the overlay's lower layer, so without
this every box could read the runtime home (other boxes' writable layers,
snapshots) and the server's secrets. Each hidden path that a box would see,
through its root or a volume, is covered inside the box's mount namespace: a
directory by an empty tmpfs, a file by an empty read-only file. Box root cannot
unmount them (it has no capability over the box's mount namespace).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...settings import env_name

#: Guest trees a box gets fresh (bwrap mounts its own there): nothing to hide.
FRESH = ("/proc", "/dev", "/tmp")
TOKENS_FILE_ENV = env_name("auth_tokens_file")


def default_hidden() -> list[Path]:
    """The server's auth tokens file, when the environment names one."""
    tokens = os.environ.get(TOKENS_FILE_ENV)
    return [Path(tokens)] if tokens else []


def resolve(paths: Iterable[Path | str]) -> list[str]:
    """Absolute, symlink-free host paths, each once."""
    seen: list[str] = []
    for path in paths:
        real = os.path.realpath(os.fspath(path))
        if real not in seen:
            seen.append(real)
    return seen


def _within(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ('' if equal), or None if outside it."""
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    if path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    return None


def _fresh(guest: str) -> bool:
    return any(guest == f or guest.startswith(f + "/") for f in FRESH)


def bwrap_args(
    hidden: Sequence[str], lower: str, volumes: Sequence[tuple[str, str, bool]]
) -> list[str]:
    """bwrap arguments (to follow the root and volume mounts) covering ``hidden``."""
    sources = [(os.path.realpath(lower), "/")]
    sources += [(os.path.realpath(host), guest) for host, guest, _ in volumes]
    args: list[str] = []
    done: set[str] = set()
    for path in hidden:
        if not os.path.lexists(path):
            continue
        is_dir = os.path.isdir(path)
        for source, dest in sources:
            rel = _within(path, source)
            if rel is None:
                continue
            guest = posixpath.normpath(posixpath.join(dest, rel)) if rel else dest
            if guest == "/" or guest in done or (dest == "/" and _fresh(guest)):
                continue
            done.add(guest)
            if is_dir:  # empty and read-only: nothing to find, nothing to stash there
                args += ["--perms", "0555", "--tmpfs", guest, "--remount-ro", guest]
            else:
                args += ["--ro-bind", "/dev/null", guest]
    return args
