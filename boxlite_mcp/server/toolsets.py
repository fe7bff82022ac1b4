"""Toolsets: which tools a server offers, as ``--tools`` / ``BOXLITE_MCP_TOOLS`` say.

Every offered tool's description and schema rides along in each model request, so
an agent that only creates a box, runs commands and moves a file or two pays for
two dozen tools it never calls. ``core`` is the common loop in at most
``MAX_CORE`` tools; a comma list names exactly the tools wanted (``core`` may be
one of its words, to add a few to it).

The names are checked against the tools this build registers: a misspelt name is
a configuration error naming it and the valid ones, never a silently smaller
server. A ``core`` tool this build lacks is simply left out.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..settings import env_name

ALL = "all"
CORE = "core"

#: The common loop: a box, commands (long ones and servers followed with exec_read
#: and stopped with exec_kill), a Python session, small files, and what the runtime
#: allows. At most ``MAX_CORE``.
CORE_TOOLS: tuple[str, ...] = (
    "box_create",
    "box_list",
    "box_remove",
    "runtime_info",
    "exec_run",
    "exec_start",
    "exec_read",
    "exec_kill",
    "python_run",
    "python_reset",
    "file_read",
    "file_write",
)
MAX_CORE = 12

#: How an error names the setting.
_SETTING = f"--tools / {env_name('tools')}"


class ToolsetError(ValueError):
    """A ``--tools`` value that names no tool this server has; one line, says what to do."""


def select(spec: str, available: Sequence[str]) -> list[str]:
    """The tools ``spec`` asks for, in ``available``'s order.

    ``spec`` is ``all``, ``core``, or a comma list whose words are tool names or
    ``core``. ``ToolsetError`` names every unknown word and lists the valid ones.
    """
    words = [word.strip() for word in spec.split(",") if word.strip()]
    if not words:
        raise ToolsetError(
            f"{_SETTING} is empty ({spec!r}): give {ALL}, {CORE}, or a comma list of tool names"
        )
    if ALL in words:
        if len(words) > 1:
            raise ToolsetError(f"{_SETTING} {spec!r}: {ALL} stands alone; drop the other names")
        return list(available)
    unknown = [word for word in words if word != CORE and word not in available]
    if unknown:
        raise ToolsetError(_unknown_message(unknown, available))
    wanted = set(words)
    if CORE in wanted:
        wanted.update(CORE_TOOLS)
    return [name for name in available if name in wanted]


def _unknown_message(unknown: list[str], available: Sequence[str]) -> str:
    described = []
    for word in unknown:
        close = difflib.get_close_matches(word, available, n=1)
        shown = repr(word[:60])
        described.append(f"{shown} (did you mean {close[0]}?)" if close else shown)
    noun = "tool" if len(unknown) == 1 else "tools"
    return (
        f"{_SETTING}: no {noun} {', '.join(described)} on this server; "
        f"give {ALL}, {CORE}, or a comma list of: {', '.join(available)}"
    )
