"""One error hierarchy for every runtime, mirroring BoxLite's.

Every runtime (bwrap, rest, local) raises only these, so the MCP layer maps
errors once. Messages are written for a model: what went wrong and what to do.
What a caller may act on is structure, never the wording: the kind (the class),
the box the error is about and the state the operation needs it in.
"""

from __future__ import annotations

from typing import Literal

#: The box states an operation may require (a subset of ``types.BoxStatus`` values).
RequiredState = Literal["running", "stopped"]


class BoxliteError(Exception):
    """Base of every error a runtime raises."""

    #: Stable, machine-readable kind (also the BoxLite REST ``error.type``).
    kind: str = "InternalError"
    #: The state the operation needs the box in, when the box's state was the problem.
    default_required_state: RequiredState | None = None

    def __init__(
        self,
        message: str,
        *,
        box: str | None = None,
        required_state: RequiredState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: The runtime name (or id) of the box the error is about, when one is.
        self.box = box
        self.required_state = required_state or self.default_required_state

    def about(self, box: str) -> BoxliteError:
        """Name the box this error is about, unless it already names one; returns self."""
        if self.box is None:
            self.box = box
        return self

    def requiring(self, state: RequiredState) -> BoxliteError:
        """Record the state the failed operation needs, unless already known; returns self."""
        if self.required_state is None:
            self.required_state = state
        return self

    def __str__(self) -> str:
        return self.message


class NotFoundError(BoxliteError):
    """A box, execution, snapshot, image or path does not exist."""

    kind = "NotFoundError"


class AlreadyExistsError(BoxliteError):
    """A box or snapshot with that name already exists."""

    kind = "AlreadyExistsError"


class InvalidStateError(BoxliteError):
    """The box is in the wrong state for the operation (e.g. running when it must be stopped)."""

    kind = "InvalidStateError"


class StoppedError(InvalidStateError):
    """The box is stopped and the operation needs it running."""

    kind = "StoppedError"
    default_required_state = "running"


class InvalidArgumentError(BoxliteError):
    """An option or argument is malformed or out of range."""

    kind = "InvalidArgumentError"


class UnsupportedError(BoxliteError):
    """This runtime or server does not offer the operation (capability off, feature absent)."""

    kind = "UnsupportedError"


class ImageError(BoxliteError):
    """The image or rootfs cannot be resolved or prepared."""

    kind = "ImageError"


class AuthError(BoxliteError):
    """Authentication or authorisation failed."""

    kind = "AuthError"


class BoxTimeoutError(BoxliteError):
    """An operation did not finish in time."""

    kind = "TimeoutError"


class InternalError(BoxliteError):
    """Anything else: a runtime failure, an unexpected server answer."""

    kind = "InternalError"


class UnavailableError(InternalError):
    """The runtime or server cannot be reached (connection refused, server gone)."""

    kind = "UnavailableError"


ERRORS_BY_KIND: dict[str, type[BoxliteError]] = {
    cls.kind: cls
    for cls in (
        NotFoundError,
        AlreadyExistsError,
        InvalidStateError,
        StoppedError,
        InvalidArgumentError,
        UnsupportedError,
        ImageError,
        AuthError,
        BoxTimeoutError,
        InternalError,
        UnavailableError,
    )
}


#: The most characters of a caller's reference an error message repeats.
MAX_QUOTED_REFERENCE = 64


def quote_reference(reference: str) -> str:
    """A reference the caller gave (a box, execution, snapshot or session), as an error
    repeats it: quoted, with control and invisible characters escaped (``repr``), and
    cut to ``MAX_QUOTED_REFERENCE`` characters, so that a huge or hostile reference
    can neither flood a message nor forge lines in it.

    Repeating what was asked reveals nothing the caller does not know, so a message
    stays the same whether or not someone else holds that reference.
    """
    if len(reference) <= MAX_QUOTED_REFERENCE:
        return repr(reference)
    return f"{reference[:MAX_QUOTED_REFERENCE]!r}… ({len(reference)} characters)"


def attach_unsupported(runtime: str, execution_id: str) -> UnsupportedError:
    """``Box.attach`` where executions live in the process that started them (bwrap,
    the local SDK): they end with it, so no other process can follow them."""
    return UnsupportedError(
        f"the {runtime} runtime cannot re-attach to execution {quote_reference(execution_id)}: "
        "its executions belong to the process that started them and end with it. Run "
        "several replicas only over a BoxLite server (--runtime rest)."
    )


def too_big_for_transfer(what: str, size: int | None, cap: int) -> InvalidArgumentError:
    """The one wording for a file or content over the in-band transfer cap.

    ``size`` is None when the transfer stopped at the cap before the size was known.
    """
    amount = f"is {size} bytes, over" if size is not None else "is over"
    stopped = "" if size is not None else " (the transfer stopped there)"
    return InvalidArgumentError(
        f"{what} {amount} the {cap}-byte limit for in-band transfer{stopped}. Read part of "
        "it with exec_run (head -c N, tail, grep, sed -n), or move it whole with "
        "copy_out / copy_in if the operator allows host paths."
    )


def not_a_regular_file(path: str, directory: bool) -> InvalidArgumentError:
    """A path asked for as a file that is a directory (or a device, fifo, socket)."""
    if directory:
        return InvalidArgumentError(
            f"{quote_reference(path)} is a directory, not a file. List it with exec_run "
            f"(ls -la {path}), or read a file inside it."
        )
    return InvalidArgumentError(
        f"{quote_reference(path)} is not a regular file (a device, fifo or socket); "
        "read it with exec_run instead."
    )
