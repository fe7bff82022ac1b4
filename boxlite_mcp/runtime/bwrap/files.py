"""copy_in / copy_out for a running box, with BoxLite's tar semantics.

Placeholder until the safe in-box writer lands.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedError


async def copy_in(init_pid: int, host_src: Path, box_dest: str) -> None:
    raise UnsupportedError("copy_in is not implemented yet in the bwrap runtime")


async def copy_out(init_pid: int, box_src: str, host_dest: Path) -> None:
    raise UnsupportedError("copy_out is not implemented yet in the bwrap runtime")
