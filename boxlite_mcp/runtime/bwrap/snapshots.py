"""Snapshots, clone, export and import of bwrap boxes (placeholder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UnsupportedError
from ..types import SnapshotInfo

if TYPE_CHECKING:
    from .runtime import BoxState, BwrapRuntime


def _todo() -> UnsupportedError:
    return UnsupportedError("not implemented yet in the bwrap runtime")


async def create(rt: BwrapRuntime, state: BoxState, name: str) -> SnapshotInfo:
    raise _todo()


def list_(rt: BwrapRuntime, state: BoxState) -> list[SnapshotInfo]:
    raise _todo()


def get(rt: BwrapRuntime, state: BoxState, name: str) -> SnapshotInfo:
    raise _todo()


async def remove(rt: BwrapRuntime, state: BoxState, name: str) -> None:
    raise _todo()


async def restore(rt: BwrapRuntime, state: BoxState, name: str) -> None:
    raise _todo()


async def clone(rt: BwrapRuntime, state: BoxState, count: int,
                names: list[str] | None) -> list[str]:
    raise _todo()


async def export(rt: BwrapRuntime, state: BoxState, dest: Path) -> Path:
    raise _todo()


async def import_box(rt: BwrapRuntime, archive: Path, name: str | None) -> str:
    raise _todo()
