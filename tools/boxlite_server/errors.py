"""Errors on the wire: one table from BoxliteError kinds to status, type and code.

Bodies follow each document's ``ErrorResponse``: 0.9 ``{"error": {"message",
"type", "code": <status>}}``; 0.10 ``{"error": {"message", "type", "code":
<snake_case>, "request_id"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse

from boxlite_mcp.runtime.errors import BoxliteError

from .config import Generation


@dataclass(frozen=True, slots=True)
class WireError:
    status: int
    type_09: str  # a member of rest-api-v0.9.yaml's ErrorModel.type enum
    type_10: str  # a member of box-api-v0.10.yaml's ErrorModel.type enum
    code_10: str  # a member of box-api-v0.10.yaml's ErrorModel.code enum


#: BoxliteError.kind → how it travels. Statuses follow both documents' response
#: templates (400 BadRequest, 404 NotFound, 409 Conflict, 422 Unprocessable).
WIRE_ERRORS: dict[str, WireError] = {
    "NotFoundError": WireError(404, "NotFoundError", "NotFoundError", "not_found"),
    "AlreadyExistsError": WireError(
        409, "AlreadyExistsError", "AlreadyExistsError", "already_exists"
    ),
    "InvalidStateError": WireError(409, "InvalidStateError", "InvalidStateError", "invalid_state"),
    "StoppedError": WireError(409, "StoppedError", "StoppedError", "stopped"),
    "InvalidArgumentError": WireError(
        400, "InvalidArgumentError", "InvalidArgumentError", "invalid_argument"
    ),
    "UnsupportedError": WireError(400, "UnsupportedError", "UnsupportedError", "unsupported"),
    "ImageError": WireError(422, "ImageError", "ImageError", "image_pull_failed"),
    "AuthError": WireError(401, "UnauthorizedError", "AuthError", "unauthenticated"),
    "TimeoutError": WireError(504, "InternalError", "TimeoutError", "timeout"),
    "InternalError": WireError(500, "InternalError", "InternalError", "internal"),
    "UnavailableError": WireError(
        503, "InternalError", "UpstreamUnavailableError", "upstream_unavailable"
    ),
}

#: Errors of the server itself (not a runtime's), by name.
FORBIDDEN = WireError(403, "UnauthorizedError", "AuthError", "permission_denied")
PAYLOAD_TOO_LARGE = WireError(
    413, "InvalidArgumentError", "ResourceExhaustedError", "resource_exhausted"
)
IDEMPOTENCY_MISMATCH = WireError(
    422, "InvalidArgumentError", "InvalidArgumentError", "invalid_argument"
)


def wire_error(exc: BoxliteError) -> WireError:
    return WIRE_ERRORS.get(exc.kind, WIRE_ERRORS["InternalError"])


def error_body(
    generation: Generation, wire: WireError, message: str, request_id: str | None = None
) -> dict[str, object]:
    if generation == "0.9":
        return {"error": {"message": message, "type": wire.type_09, "code": wire.status}}
    error: dict[str, object] = {"message": message, "type": wire.type_10, "code": wire.code_10}
    if request_id is not None:
        error["request_id"] = request_id
    return {"error": error}


def error_response(
    generation: Generation,
    wire: WireError,
    message: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(generation, wire, message, request_id), status_code=wire.status, headers=headers
    )


class HttpError(Exception):
    """Raised by route code for a server-level error with a chosen wire shape."""

    def __init__(self, wire: WireError, message: str) -> None:
        super().__init__(message)
        self.wire = wire
        self.message = message
