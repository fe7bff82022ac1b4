"""Host path confinement: copy, export, import and volumes touch only allowed roots.

A path is resolved (symlinks followed, ``..`` collapsed) before it is checked, so a
link inside an allowed root cannot point the server elsewhere. Relative paths are
taken relative to the first allowed root.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..runtime.errors import InvalidArgumentError, NotFoundError, UnsupportedError
from .naming import owner_hash
from .owners import LOCAL_OWNER

#: Under each allowed root, the private directories of the owners of a shared server.
OWNERS_DIR = "owners"

ENABLE_HINT = (
    "Host file access is disabled on this server. The operator enables it for chosen "
    "directories with --allow-path DIR (repeatable) or BOXLITE_MCP_ALLOW_PATHS="
    f"DIR1{os.pathsep}DIR2. Meanwhile use file_read/file_write to move data in-band."
)


class HostPaths:
    """The allowed host roots and the one check every host path goes through."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(os.path.realpath(root)) for root in roots]

    @property
    def enabled(self) -> bool:
        return bool(self.roots)

    def describe(self) -> str:
        return ", ".join(str(root) for root in self.roots) or "(none)"

    def for_owner(self, owner: str) -> HostPaths:
        """The roots ``owner`` may touch.

        The one local client (stdio) gets the roots themselves. On a shared server
        (HTTP principals and sessions) each owner gets a private directory
        ``<root>/owners/<owner hash>/`` under each root instead, so that owners
        never read or overwrite each other's files there.
        """
        if owner == LOCAL_OWNER or not self.roots:
            return self
        private = [root / OWNERS_DIR / owner_hash(owner) for root in self.roots]
        for path in private:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return HostPaths(private)

    def confine(self, raw: str, *, must_exist: bool = False, purpose: str = "path") -> Path:
        """The resolved host path, or an error naming the allowed roots."""
        if not self.roots:
            raise UnsupportedError(ENABLE_HINT)
        if not raw or "\x00" in raw:
            raise InvalidArgumentError(f"The host {purpose} is empty or contains a NUL byte.")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        resolved = Path(os.path.realpath(candidate))
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise InvalidArgumentError(
                f"The host {purpose} {raw!r} resolves to {str(resolved)!r}, outside the allowed "
                f"roots: {self.describe()}. Use a path inside one of them."
            )
        if must_exist and not resolved.exists():
            raise NotFoundError(f"The host {purpose} {str(resolved)!r} does not exist.")
        return resolved
