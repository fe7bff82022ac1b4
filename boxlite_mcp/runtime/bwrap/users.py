"""Who an exec runs as: ``name``, ``uid``, ``uid:gid`` or ``name:group``.

Names are looked up in the box's own ``/etc/passwd`` and ``/etc/group`` (read
safely through ``boxfs``), never the host's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgumentError
from .boxfs import BoxRoot


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    home: str


def _table(root: BoxRoot, path: str) -> list[list[str]]:
    data = root.read_file(path) or b""
    return [
        line.split(":")
        for line in data.decode(errors="replace").splitlines()
        if line and not line.startswith("#")
    ]


def resolve_user(spec: str | None, root: BoxRoot) -> User:
    """Resolve a user spec in the box; InvalidArgumentError says what exists."""
    if spec is None or spec in ("", "root", "0"):
        return User(0, 0, "/root")
    user_part, _, group_part = spec.partition(":")
    passwd = _table(root, "/etc/passwd")
    uid: int | None = None
    gid: int | None = None
    home = "/"
    if user_part.isdigit():
        uid = int(user_part)
        for row in passwd:
            if len(row) >= 6 and row[2] == user_part:
                gid, home = int(row[3]), row[5]
                break
    else:
        for row in passwd:
            if len(row) >= 6 and row[0] == user_part:
                uid, gid, home = int(row[2]), int(row[3]), row[5]
                break
        if uid is None:
            names = ", ".join(row[0] for row in passwd[:12])
            raise InvalidArgumentError(
                f"user {user_part!r} does not exist in the box (its /etc/passwd has: "
                f"{names or 'no entries'}); pass a user name from it or a numeric uid[:gid]"
            )
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            for row in _table(root, "/etc/group"):
                if len(row) >= 3 and row[0] == group_part:
                    gid = int(row[2])
                    break
            else:
                raise InvalidArgumentError(
                    f"group {group_part!r} does not exist in the box; pass a numeric gid"
                )
    if uid > 65535 or (gid is not None and gid > 65535):
        raise InvalidArgumentError("uids and gids in a bwrap box range from 0 to 65535")
    return User(uid, gid if gid is not None else uid, home)
