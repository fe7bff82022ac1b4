"""HTTP answers and transport failures → the runtime's error hierarchy.

The mapping is the one the API README fixes (and the reference client uses):

=======  ==============================================  ======================
status   ``error.type``                                  error
=======  ==============================================  ======================
404      any                                             NotFoundError
409      AlreadyExistsError / InvalidStateError /        the same kind
         StoppedError
400      any                                             InvalidArgumentError
422      ImageError                                      ImageError
422      anything else                                   InvalidArgumentError
401/403  any                                             AuthError
other    any                                             InternalError
=======  ==============================================  ======================

Bodies come nested (``{"error": {"message", "type", "code"}}``), flat
(``{"message", "type", "code"}``), as ``{"error": "text"}``, or not as JSON at all;
then the status alone decides. 0.10 servers may omit ``type`` but send a
snake_case ``code``; the code then stands in for the type. A bare 502/503/504 (a
proxy speaking, or retries exhausted) is an UnavailableError, itself an
InternalError.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..errors import (
    AlreadyExistsError,
    AuthError,
    BoxliteError,
    ImageError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    StoppedError,
    UnavailableError,
)

_CONFLICTS: dict[str, type[BoxliteError]] = {
    "AlreadyExistsError": AlreadyExistsError,
    "InvalidStateError": InvalidStateError,
    "StoppedError": StoppedError,
}

#: 0.10 ``error.code`` values that name one of the types the mapping dispatches on.
_TYPE_BY_CODE = {
    "already_exists": "AlreadyExistsError",
    "invalid_state": "InvalidStateError",
    "stopped": "StoppedError",
    "image_pull_failed": "ImageError",
}

_MAX_TEXT = 500


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """``(message, type)`` from an error body of any shape; ``(None, None)`` if not JSON."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    inner = data.get("error")
    if isinstance(inner, dict):
        data = inner
    elif isinstance(inner, str):
        return inner, _str_or_none(data.get("type"))
    message = _str_or_none(data.get("message")) or _str_or_none(data.get("detail"))
    error_type = _str_or_none(data.get("type"))
    code = data.get("code")
    if error_type is None and isinstance(code, str):
        error_type = _TYPE_BY_CODE.get(code)
    return message, error_type


def error_from_status(status: int, body: bytes, *, what: str = "") -> BoxliteError:
    """The error for a non-2xx answer. ``what`` names the operation, for the message."""
    message, error_type = parse_error_body(body)
    if message is None:
        message = _body_text(body) or httpx.codes.get_reason_phrase(status) or "no details"
    elif len(message) > _MAX_TEXT:
        message = message[:_MAX_TEXT] + "…"
    prefix = f"{what}: " if what else ""
    if status == 404:
        return NotFoundError(f"{prefix}{message}")
    if status == 409 and error_type in _CONFLICTS:
        return _CONFLICTS[error_type](f"{prefix}{message}")
    if status == 400:
        return InvalidArgumentError(f"{prefix}{message}")
    if status == 422:
        if error_type == "ImageError":
            return ImageError(f"{prefix}{message}")
        return InvalidArgumentError(f"{prefix}{message}")
    if status in (401, 403):
        return AuthError(
            f"{prefix}the BoxLite server refused the credentials (HTTP {status}): {message}. "
            "Check BOXLITE_API_KEY (0.10) or BOXLITE_REST_CLIENT_ID and "
            "BOXLITE_REST_CLIENT_SECRET (0.9)."
        )
    if status in (502, 503, 504):
        return UnavailableError(
            f"{prefix}the BoxLite server is unavailable (HTTP {status}): {message}. "
            "Try again later."
        )
    return InternalError(f"{prefix}HTTP {status} from the BoxLite server: {message}")


class AttachConflictError(InvalidStateError):
    """409 on a 0.10 attach: another socket is still attached to the execution."""


def display_url(url: httpx.URL | str) -> str:
    """A URL fit for messages: no userinfo, no query string."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def unavailable(url: httpx.URL | str, exc: BaseException) -> UnavailableError:
    """A transport failure (refused, reset, timed out) as an UnavailableError, secrets-free."""
    reason = _transport_reason(exc)
    return UnavailableError(
        f"cannot reach the BoxLite server at {display_url(url)}: {reason}. "
        "Check BOXLITE_REST_URL and that the server is running."
    )


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or failed"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection"
    if isinstance(exc, httpx.NetworkError):
        return "the connection broke"
    return type(exc).__name__


def _body_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + "…"
    return text


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
