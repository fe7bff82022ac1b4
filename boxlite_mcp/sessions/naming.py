"""The reserved runtime name scheme that records a box's owner in the runtime itself.

BoxLite create requests carry no labels, so the MCP layer keeps its bookkeeping
in the box name: ``mcp.<owner-hash>.<p|e>.<name>``. ``p`` marks a persistent box,
``e`` an ephemeral one; an unnamed box gets ``_<random>`` as its name part (user
names start with a letter or digit, so the two never clash). A restarted server,
or another replica, finds an owner's boxes again by parsing these names.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

PREFIX = "mcp"
#: Longest user-facing box name; the runtime name adds ``len("mcp.<12>.p.")`` = 19.
MAX_NAME_LENGTH = 100
_HASH_LENGTH = 12
_PATTERN = re.compile(
    rf"^{PREFIX}\.(?P<owner>[0-9a-f]{{{_HASH_LENGTH}}})\.(?P<kind>[pe])\.(?P<label>[A-Za-z0-9_][A-Za-z0-9._-]*)$"
)


def owner_hash(owner: str) -> str:
    """A short stable digest of an owner identity (never the identity itself)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:_HASH_LENGTH]


@dataclass(frozen=True)
class ParsedName:
    owner_hash: str
    persist: bool
    name: str | None  # the user-facing name; None for an unnamed box


def runtime_name(owner: str, name: str | None, *, persist: bool) -> str:
    """The runtime box name for an owner's box (a fresh random one when unnamed)."""
    label = name if name is not None else f"_{secrets.token_hex(6)}"
    return f"{PREFIX}.{owner_hash(owner)}.{'p' if persist else 'e'}.{label}"


def parse(runtime_box_name: str | None) -> ParsedName | None:
    """The scheme's parts, or None for a box this server did not create."""
    if not runtime_box_name:
        return None
    match = _PATTERN.match(runtime_box_name)
    if match is None:
        return None
    label = match["label"]
    return ParsedName(
        owner_hash=match["owner"],
        persist=match["kind"] == "p",
        name=None if label.startswith("_") else label,
    )


def shown_name(runtime_box_name: str) -> str | None:
    """How a box's owner knows it: its name, or ``(unnamed box)``; None if not ours."""
    parsed = parse(runtime_box_name)
    if parsed is None:
        return None
    return parsed.name if parsed.name is not None else "(unnamed box)"
