"""NUL bytes in caller text, refused before they reach a system call.

A NUL cannot be part of an argv entry, an environment variable, a path or a
user name: ``subprocess`` and ``os`` raise ``ValueError`` ('embedded null
byte'), which is no BoxliteError, so a tool call would crash instead of
answering. Every field is checked where the runtime receives it, and the error
names the field so the caller knows what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import InvalidArgumentError
from ..types import BoxOptions, ExecRequest


def check(field: str, value: str | None) -> None:
    """Refuse ``value`` if it holds a NUL byte; ``field`` names it in the error."""
    if value is not None and "\0" in value:
        raise InvalidArgumentError(
            f"{field} contains a NUL byte, which no command, path or name can carry; "
            "remove it"
        )


def check_all(field: str, values: Iterable[str]) -> None:
    for index, value in enumerate(values):
        check(f"{field}[{index}]", value)


def check_env(field: str, env: Mapping[str, str] | None) -> None:
    for key, value in (env or {}).items():
        check(f"{field} variable name {key.replace(chr(0), '<NUL>')!r}", key)
        check(f"{field}[{key!r}]", value)


def check_request(request: ExecRequest) -> None:
    """Every text field of an exec request."""
    check("command", request.command)
    check_all("args", request.args)
    check_env("env", request.env)
    check("working_dir", request.working_dir)
    check("user", request.user)


def check_options(options: BoxOptions) -> None:
    """The text fields of box options that later reach a process or a path."""
    check("working_dir", options.working_dir)
    check("user", options.user)
    check_env("env", options.env)
    check("rootfs_path", options.rootfs_path)
    check("image", options.image)
    for volume in options.volumes or []:
        check("volume host_path", volume.host_path)
        check("volume guest_path", volume.guest_path)
