"""``clone_many``'s all-or-nothing rule (``runtime/shared/clones.py``), on its own.

The contract suite checks it through every runtime; this pins the helper itself:
argument checks, the rollback on failure, and the rollback under cancellation.
"""

from __future__ import annotations

import anyio
import pytest

from boxlite_mcp.runtime.errors import InternalError, InvalidArgumentError, NotFoundError
from boxlite_mcp.runtime.shared.clones import check_batch, clone_all

pytestmark = pytest.mark.anyio


class Maker:
    """Makes numbered clones; fails (or hangs) at a chosen one; records removals."""

    def __init__(self, fail_at: int | None = None, hang_at: int | None = None) -> None:
        self.fail_at, self.hang_at = fail_at, hang_at
        self.made: list[str] = []
        self.removed: list[str] = []

    async def make(self, name: str | None) -> str:
        index = len(self.made)
        if index == self.fail_at:
            raise InternalError("the runtime broke")
        if index == self.hang_at:
            await anyio.sleep_forever()
        clone = name or f"clone-{index}"
        self.made.append(clone)
        return clone

    async def remove(self, clone: str) -> None:
        self.removed.append(clone)
        if clone == "a":
            raise NotFoundError("already gone")  # a removal's own error is ignored


async def test_all_clones_are_made_in_order() -> None:
    maker = Maker()
    assert await clone_all(3, None, maker.make, maker.remove) == ["clone-0", "clone-1", "clone-2"]
    assert await clone_all(2, ["x", "y"], maker.make, maker.remove) == ["x", "y"]
    assert maker.removed == []


async def test_a_failure_removes_the_clones_already_made() -> None:
    maker = Maker(fail_at=2)
    with pytest.raises(InternalError):
        await clone_all(4, ["a", "b", "c", "d"], maker.make, maker.remove)
    assert maker.removed == ["a", "b"]


async def test_a_cancelled_batch_still_removes_what_it_made() -> None:
    maker = Maker(hang_at=1)
    with anyio.move_on_after(0.2):
        await clone_all(3, None, maker.make, maker.remove)
    assert maker.removed == ["clone-0"]


@pytest.mark.parametrize(
    ("count", "names"),
    [(0, None), (-1, None), (2, ["one"]), (1, ["bad name"]), (1, ["s\0"]), ("2", None)],
)
async def test_bad_batches_are_refused_before_anything_is_made(
    count: object, names: list[str] | None
) -> None:
    maker = Maker()
    with pytest.raises(InvalidArgumentError):
        check_batch(count, names)
    with pytest.raises(InvalidArgumentError):
        await clone_all(count, names, maker.make, maker.remove)  # type: ignore[arg-type]
    assert maker.made == []
