"""``Box.clone_many``'s all-or-nothing promise, kept once for every runtime.

Clones are made one by one; when one fails (or the call is cancelled), the ones
already made are removed before the failure goes on, so a caller never inherits
half a batch. The removal is shielded: a cancelled call still cleans up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from ..errors import BoxliteError, InvalidArgumentError
from ..types import check_name

T = TypeVar("T")


def check_batch(count: object, names: Sequence[str] | None) -> list[str | None]:
    """The name of each clone to make (None: unnamed), after checking count and names."""
    if not isinstance(count, int) or count < 1:
        raise InvalidArgumentError(f"clone count must be at least 1, got {count!r}")
    if names is not None and len(names) != count:
        raise InvalidArgumentError(
            f"{len(names)} names given for {count} clones; give one name per clone or none"
        )
    for name in names or ():
        check_name(name, "box")
    return list(names) if names is not None else [None] * count


async def clone_all(
    count: int,
    names: Sequence[str] | None,
    make: Callable[[str | None], Awaitable[T]],
    remove: Callable[[T], Awaitable[None]],
) -> list[T]:
    """``count`` clones from ``make(name)``, or none: on failure each made one is
    ``remove``d (its own errors ignored) and the failure re-raised."""
    made: list[T] = []
    try:
        for name in check_batch(count, names):
            made.append(await make(name))
    except BaseException:
        with anyio.CancelScope(shield=True):
            for clone in made:
                with contextlib.suppress(BoxliteError):
                    await remove(clone)
        raise
    return made
