"""Contract inputs checked again where a runtime receives them.

The models validate at construction, but a caller can slip past them
(``model_construct``), and what a runtime passes on reaches a server, the native
layer or a system call that answers less helpfully (or raises ``ValueError``).
So options and requests are checked afresh and refused with an
InvalidArgumentError saying what to fix. The single-field rules (names, NUL
bytes) live in ``runtime.types``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pydantic

from ..errors import InvalidArgumentError
from ..types import BoxOptions, ExecRequest, check_nul


def box_options(options: BoxOptions) -> BoxOptions:
    """``options`` validated afresh (only the fields the caller set)."""
    check_options_text(options)
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
    check_request_text(request)
    try:
        return ExecRequest.model_validate(request.model_dump(exclude_unset=True))
    except pydantic.ValidationError as exc:
        raise InvalidArgumentError(f"invalid exec request: {first_error(exc)}") from None


def first_error(exc: pydantic.ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def check_all(field: str, values: Iterable[str]) -> None:
    """No NUL in any of ``values`` (``field[i]`` names the bad one)."""
    for index, value in enumerate(values):
        check_nul(f"{field}[{index}]", value)


def check_env(field: str, env: Mapping[str, str] | None) -> None:
    """No NUL in an environment's names or values."""
    for key, value in (env or {}).items():
        check_nul(f"{field} variable name {key.replace(chr(0), '<NUL>')!r}", key)
        check_nul(f"{field}[{key!r}]", value)


def check_process_text(spec: BoxOptions | ExecRequest) -> None:
    """No NUL in what a box and an exec both say of a process: directory, user, environment."""
    check_nul("working_dir", spec.working_dir)
    check_nul("user", spec.user)
    check_env("env", spec.env)


def check_request_text(request: ExecRequest) -> None:
    """No NUL in any text field of an exec request (checked before anything is spawned)."""
    check_nul("command", request.command)
    check_all("args", request.args)
    check_process_text(request)


def check_options_text(options: BoxOptions) -> None:
    """No NUL in the text fields of box options that later reach a process or a path."""
    check_process_text(options)
    check_nul("rootfs_path", options.rootfs_path)
    check_nul("image", options.image)
    for volume in options.volumes or []:
        check_nul("volume host_path", volume.host_path)
        check_nul("volume guest_path", volume.guest_path)
