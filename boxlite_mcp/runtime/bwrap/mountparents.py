"""The directories a box's bind mounts need, made in the box's own layer before it starts.

bubblewrap makes a bind mount's missing parent directories itself, as the user it
runs as (host root) and closed to everyone else; box root is host uid 100000
(``idmap``), so a volume at ``/work/a/b`` on an image without ``/work`` would sit
behind directories the box cannot enter. The runtime makes those directories first,
in the box's upper layer, as box root would have with ``mkdir``: owned by box root,
mode 0755, and *opaque* (``hostimage.OPAQUE_XATTR``) so that nothing the image's
lower layers hide at that path (a whiteout in the default image's mask, a directory
the box deleted) shows through.

A directory the box's view already has but its upper layer lacks is made there with
the metadata of the layer that shows it (owner through that layer's idmapping), as
an overlayfs copy-up would, so the box sees no change.

Why the layers are read by hand: the overlay is mounted only in the box's private
mount namespace, which the launch creates; before it there is no merged view to look
at. The lookup follows overlayfs's rules for the cases that decide whether a
directory exists: the topmost layer with an entry wins, a whiteout (a 0/0 character
device) ends the lookup, an opaque directory hides the layers below it. A path that
is a file or symlink in the box's view is left alone (bubblewrap then says what is
wrong).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import idmap
from .hostimage import OPAQUE_XATTR


@dataclass(frozen=True)
class Layer:
    """A lower layer of the box's overlay, topmost first, and whether the box sees it
    through an idmapped mount (its ids are box ids: ``idmap``)."""

    path: str
    idmapped: bool


def make(
    upper: str, lowers: Sequence[Layer], targets: Iterable[str], fresh: Sequence[str] = ()
) -> None:
    """Make every missing ancestor directory of each target (an absolute box path)
    in ``upper``, the box's own layer; a target below one of the ``fresh`` mounts is
    left to ``fresh_dirs``."""
    for target in targets:
        if _fresh_root(target, fresh) is None:
            parts = [p for p in os.path.normpath(target).split("/") if p]
            _make_ancestors(upper, lowers, parts[:-1])


def fresh_dirs(targets: Iterable[str], fresh: Sequence[str]) -> list[str]:
    """bubblewrap arguments making, mode 0755, the ancestors of each target that lie
    below one of the ``fresh`` mounts (the tmpfs bubblewrap puts at ``/tmp``...: empty
    at every start, so everything below it is missing). bubblewrap makes them as host
    root, so in the box they belong to nobody: box root can enter them, not write."""
    args: list[str] = []
    for target in targets:
        root = _fresh_root(target, fresh)
        if root is None:
            continue
        path = os.path.dirname(os.path.normpath(target))
        ancestors: list[str] = []
        while path != root:
            ancestors.append(path)
            path = os.path.dirname(path)
        for ancestor in reversed(ancestors):
            args += ["--perms", "0755", "--dir", ancestor]
    return args


def _fresh_root(target: str, fresh: Sequence[str]) -> str | None:
    """The deepest of the ``fresh`` mounts that ``target`` lies below, if any."""
    target = os.path.normpath(target)
    below = [m for m in fresh if target.startswith(m.rstrip("/") + "/")]
    return max(below, key=len) if below else None


def _make_ancestors(upper: str, lowers: Sequence[Layer], parts: Sequence[str]) -> None:
    own = Layer(upper, idmapped=False)
    active: list[Layer] = [own, *lowers]  # the layers that hold the current directory
    for i in range(len(parts)):
        rel = os.path.join(*parts[: i + 1])
        found: list[tuple[Layer, os.stat_result]] = []
        for layer in active:
            path = os.path.join(layer.path, rel)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if _is_whiteout(st):
                break
            if not stat.S_ISDIR(st.st_mode):
                if not found:
                    return  # a file or symlink in the box's view: not ours to replace
                break
            found.append((layer, st))
            if _is_opaque(path):
                break
        here = os.path.join(upper, rel)
        if not found:
            _new_dir(here)
            active = [own]
            continue
        top, st = found[0]
        if top is not own:
            uid, gid = (
                (idmap.to_host(st.st_uid), idmap.to_host(st.st_gid))
                if top.idmapped
                else (st.st_uid, st.st_gid)
            )
            _dir(here, stat.S_IMODE(st.st_mode), uid, gid)
            active = [own, *(layer for layer, _ in found)]
        else:
            active = [layer for layer, _ in found]


def _new_dir(path: str) -> None:
    """A directory the box's view did not have, as box root's ``mkdir`` makes it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if _is_whiteout(st):
            os.unlink(path)  # the box deleted what was here
    _dir(path, 0o755, idmap.to_host(0), idmap.to_host(0))
    os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)


def _dir(path: str, mode: int, uid: int, gid: int) -> None:
    os.mkdir(path, 0o700)
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, mode)  # after chown, which clears set-id bits


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
