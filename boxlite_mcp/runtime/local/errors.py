"""SDK failures → the runtime's error hierarchy, with a hint saying what to do.

The SDK raises ``boxlite.errors.*`` (one class per native error kind, each also a
``RuntimeError``), plain ``RuntimeError`` for failures it has no class for, and
``TypeError``/``ValueError``/``OverflowError`` when an argument does not convert
to the native type. ``translate`` maps each onto ours by class, then by the
native message's prefix (``"not found: ..."``) for the plain ones.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from ..errors import (
    AlreadyExistsError,
    AuthError,
    BoxliteError,
    BoxTimeoutError,
    ImageError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    StoppedError,
    UnavailableError,
    UnsupportedError,
)

T = TypeVar("T")

#: SDK error class name → (our class, what to do). Hints are for a model reading them.
_BY_CLASS: dict[str, tuple[type[BoxliteError], str]] = {
    "NotFoundError": (NotFoundError, ""),
    "SessionReapedError": (NotFoundError, "the session was reaped; run the command again"),
    "AlreadyExistsError": (AlreadyExistsError, "choose another name or remove the existing one"),
    "InvalidStateError": (InvalidStateError, "check the box's status (start or stop it first)"),
    "StoppedError": (StoppedError, "start the box first"),
    "InvalidArgumentError": (InvalidArgumentError, "correct the argument"),
    "UnsupportedError": (UnsupportedError, "this runtime does not offer it"),
    "ImageError": (
        ImageError,
        "check the image reference (or rootfs_path, which must be an OCI layout or rootfs "
        "directory) and that the registry is reachable",
    ),
    "ExecutionError": (InternalError, "check that the program exists in the box"),
    "ResourceExhaustedError": (InternalError, "a limit was reached; remove boxes or retry later"),
    "NetworkError": (UnavailableError, "check that the BoxLite server is running and reachable"),
    "UpstreamUnavailableError": (UnavailableError, "a BoxLite component did not answer; retry"),
    "EngineError": (
        InternalError,
        "the micro-VM engine failed; this host may not be able to boot VMs (needs a usable "
        "/dev/kvm, or Apple Silicon), so try the bwrap or rest runtime",
    ),
    "StorageError": (InternalError, "check free disk space and the runtime home's permissions"),
    "DatabaseError": (InternalError, "the runtime's database failed; check the runtime home"),
    "MetadataError": (InternalError, "the runtime's stored metadata is unreadable"),
    "ConfigError": (InvalidArgumentError, "check the runtime configuration"),
    "InternalError": (InternalError, "an internal BoxLite failure"),
    "TimeoutError": (BoxTimeoutError, "retry, or allow more time"),
}

#: Native message prefixes (``BoxliteError``'s Display) for errors raised as plain
#: RuntimeError, and the SDK class name they correspond to.
_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("not found", "NotFoundError"),
    ("already exists", "AlreadyExistsError"),
    ("invalid state", "InvalidStateError"),
    ("box is stopped", "StoppedError"),
    ("stopped", "StoppedError"),
    ("invalid argument", "InvalidArgumentError"),
    ("unsupported", "UnsupportedError"),
    ("image", "ImageError"),
    ("network error", "NetworkError"),
    ("engine", "EngineError"),
    ("storage", "StorageError"),
    ("database", "DatabaseError"),
    ("config", "ConfigError"),
    ("timeout", "TimeoutError"),
)

#: Refinements by message, checked first: the SDK files some failures under a class
#: that says less than the message (a duplicate name is an "invalid argument", a
#: failed image pull a "storage error", an HTTP error during a REST copy "internal").
_BY_MESSAGE: tuple[tuple[re.Pattern[str], type[BoxliteError], str], ...] = (
    (
        re.compile(r"already exists", re.I),
        AlreadyExistsError,
        "choose another name or remove the existing one",
    ),
    (
        re.compile(r"failed to pull image|pull a registry token", re.I),
        ImageError,
        "check the image reference and that the registry is reachable from this host",
    ),
    (
        re.compile(r"container disk not found", re.I),
        InvalidStateError,
        "the box has no disk until it has been started once; start it (and stop it) first",
    ),
    (re.compile(r"\(HTTP 404\)"), NotFoundError, ""),
    (re.compile(r"\(HTTP 409\)"), InvalidStateError, "check the box's status"),
    (re.compile(r"\(HTTP 4(00|13|22)\)"), InvalidArgumentError, "correct the argument"),
    (re.compile(r"\(HTTP 40[13]\)"), AuthError, "check BOXLITE_API_KEY"),
)

_AUTH = re.compile(r"\bauth(entication)?\b|unauthori[sz]ed|forbidden|HTTP 40[13]", re.IGNORECASE)
_MAX_DETAIL = 1000


def translate(exc: BaseException, action: str) -> BoxliteError:
    """Our error for an SDK failure while doing ``action`` (e.g. "exec in box 'x'")."""
    if isinstance(exc, BoxliteError):
        return exc
    detail = _detail(exc)
    if isinstance(exc, (TypeError, ValueError, OverflowError)) and not _is_sdk_error(exc):
        return InvalidArgumentError(f"{action} failed: invalid argument: {detail}")
    kind = _sdk_kind(exc)
    if kind is None:
        return InternalError(f"{action} failed: {type(exc).__name__}: {detail}")
    if kind == "ConfigError" and _AUTH.search(detail):
        return AuthError(
            f"{action} failed: the BoxLite server refused the credentials ({detail}); "
            "check BOXLITE_API_KEY"
        )
    error_class, hint = _BY_CLASS[kind]
    for pattern, refined, refined_hint in _BY_MESSAGE:
        if pattern.search(detail):
            error_class, hint = refined, refined_hint
            break
    return error_class(f"{action} failed: {detail}" + (f"; {hint}" if hint else ""))


class Translator:
    """Translates SDK failures for one runtime, keeping its secrets out of messages."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._secrets = tuple(secret for secret in secrets if secret)

    def error(self, exc: BaseException, action: str) -> BoxliteError:
        error = translate(exc, action)
        if any(secret in error.message for secret in self._secrets):
            message = error.message
            for secret in self._secrets:
                message = message.replace(secret, "[REDACTED]")
            error = type(error)(message)
        return error

    @asynccontextmanager
    async def translated(self, action: str) -> AsyncIterator[None]:
        """Raise our error instead of an SDK one for the duration of the block."""
        try:
            yield
        except BoxliteError:
            raise
        except Exception as exc:  # SDK and native failures of every class
            raise self.error(exc, action) from exc

    async def call(self, action: str, awaitable: Awaitable[T]) -> T:
        """Await an SDK call, translating its failures."""
        async with self.translated(action):
            return await awaitable


def _is_sdk_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("boxlite")


def _sdk_kind(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("boxlite") and cls.__name__ in _BY_CLASS:
            return cls.__name__
    if isinstance(exc, RuntimeError):
        text = str(exc).strip().lower()
        for prefix, kind in _BY_PREFIX:
            if text.startswith(prefix):
                return kind
        return "InternalError"
    return None


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3] + "..."
    return text
