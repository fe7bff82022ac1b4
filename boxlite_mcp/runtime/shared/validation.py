"""Contract inputs checked again where a runtime receives them (REST and local).

The models validate at construction, but a caller can slip past them
(``model_construct``), and what a runtime passes on reaches a server or the
native layer that answers less helpfully. So options and requests are validated
afresh and refused with an InvalidArgumentError saying what to fix.
"""

from __future__ import annotations

import pydantic

from ..errors import InvalidArgumentError
from ..types import BoxOptions, ExecRequest


def box_options(options: BoxOptions) -> BoxOptions:
    """``options`` validated afresh (only the fields the caller set)."""
    try:
        checked = BoxOptions.model_validate(options.set_fields())
    except pydantic.ValidationError as exc:
        raise InvalidArgumentError(f"invalid box option {first_error(exc)}") from None
    if checked.image is not None and checked.rootfs_path is not None:
        raise InvalidArgumentError(
            "give either image or rootfs_path, not both (they are two ways to pick the root)"
        )
    return checked


def exec_request(request: ExecRequest) -> ExecRequest:
    """``request`` validated afresh (only the fields the caller set)."""
    try:
        return ExecRequest.model_validate(request.model_dump(exclude_unset=True))
    except pydantic.ValidationError as exc:
        raise InvalidArgumentError(f"invalid exec request: {first_error(exc)}") from None


def first_error(exc: pydantic.ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))
