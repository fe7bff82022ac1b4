"""The id, name and repr of a box whose name is known when its handle is made.

The REST and local runtimes learn both from the box's info when they hand out a
handle; this mixin is the one place that keeps them and shows them. (bwrap looks
its name up live in its own state, so it does not use it.)
"""

from __future__ import annotations


class BoxIdentity:
    """``id``, ``name`` and ``__repr__`` of the contract's ``Box``."""

    _id: str
    _name: str | None

    def __init__(self, box_id: str, name: str | None) -> None:
        self._id = box_id
        self._name = name

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def reference(self) -> str:
        """What messages and exported files call the box: its name, else its id."""
        return self._name or self._id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r}, name={self._name!r})"
