"""Inputs checked before they reach the SDK.

The models validate at construction, but a caller can slip past them
(``model_construct``), and the SDK passes much straight on: to a server that
answers with a less helpful error, or to the native layer. So every input is
validated again here and refused with InvalidArgumentError saying what to fix.
"""

from __future__ import annotations

import re

import pydantic

from ..errors import InvalidArgumentError
from ..types import BOX_NAME_PATTERN, BoxOptions, ExecRequest

_NAME = re.compile(BOX_NAME_PATTERN)


def box_options(options: BoxOptions) -> BoxOptions:
    """``options`` validated afresh (only the fields the caller set)."""
    try:
        checked = BoxOptions.model_validate(options.set_fields())
    except pydantic.ValidationError as exc:
        raise InvalidArgumentError(f"invalid box option {_first_error(exc)}") from None
    if checked.image is not None and checked.rootfs_path is not None:
        raise InvalidArgumentError(
            "give either image or rootfs_path, not both (they are two ways to pick the root)")
    return checked


def exec_request(request: ExecRequest) -> ExecRequest:
    """``request`` validated afresh."""
    try:
        return ExecRequest.model_validate(request.model_dump(exclude_unset=True))
    except pydantic.ValidationError as exc:
        raise InvalidArgumentError(f"invalid exec request: {_first_error(exc)}") from None


def name(value: str | None, what: str) -> None:
    """A box or snapshot name: 1 to 128 of letters, digits, '.', '_', '-'."""
    if value is None and what != "snapshot":
        return
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not _NAME.match(value):
        raise InvalidArgumentError(
            f"invalid {what} name {value!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _first_error(exc: pydantic.ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))
