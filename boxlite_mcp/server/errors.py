"""Turn runtime failures into tool errors a model can act on.

Every runtime raises only ``BoxliteError`` subclasses with messages written for a
model; this module adds what to do next, rewrites runtime box names into the names
the owner knows, and strips anything that looks like a credential. Tracebacks never
leave the server: anything that is not anticipated is left to the SDK, which hides it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..runtime import errors as rt
from ..sessions import naming

logger = logging.getLogger(__name__)

#: (error class, pattern the message must match or None, what to do next in tool terms).
_HINTS: tuple[tuple[type[rt.BoxliteError], re.Pattern[str] | None, str], ...] = (
    (rt.StoppedError, None, "Start it with box_start (exec_run starts a box by itself)."),
    (
        rt.InvalidStateError,
        re.compile(r"(?i)\b(is running|stop it)\b"),
        "Stop the box with box_stop first (snapshots, clone and export need a stopped "
        "box; box_remove has force for a running one).",
    ),
    (rt.UnsupportedError, None, "runtime_info lists what this runtime can do."),
    (rt.ImageError, None, "Check the image reference, or omit image for the runtime's default."),
    (
        rt.AuthError,
        None,
        "The BoxLite server refused this server's credentials; the operator must fix the "
        "server configuration. Retrying will not help.",
    ),
    (rt.BoxTimeoutError, None, "Retry, or give the operation more time."),
    (rt.UnavailableError, None, "The box runtime cannot be reached right now; retry in a moment."),
    (rt.AlreadyExistsError, None, "Pick another name, or use the existing one."),
)

_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(
        r"(?i)\b(api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret|password|token|secret)"
        r"(\s*[=:]\s*|\"\s*:\s*\")[^\s\"',;&]+"
    ),
    re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"),
)


def redact(text: str) -> str:
    """Remove anything shaped like a credential from a message."""
    text = _SECRET_PATTERNS[0].sub(r"\1 [redacted]", text)
    text = _SECRET_PATTERNS[1].sub(r"\1\2[redacted]", text)
    return _SECRET_PATTERNS[2].sub(r"\1[redacted]@", text)


def clean(text: str) -> str:
    """A runtime message as the owner should see it."""
    return redact(naming.display_names_in(text))


def hint_for(error: rt.BoxliteError) -> str | None:
    """What to do next, when the error's kind (and message) make it clear."""
    for cls, pattern, hint in _HINTS:
        if isinstance(error, cls) and (pattern is None or pattern.search(error.message)):
            return hint
    return None


def to_tool_error(error: rt.BoxliteError) -> ToolError:
    """The ToolError a model sees for a runtime failure."""
    message = clean(error.message).strip() or error.kind
    hint = hint_for(error)
    if hint and hint not in message:
        stop = "" if message.endswith((".", "!", "?")) else "."
        message = f"{message}{stop} {hint}"
    return ToolError(f"{error.kind}: {message}")


@contextmanager
def tool_errors() -> Iterator[None]:
    """Translate anticipated failures inside a tool into ``ToolError``."""
    try:
        yield
    except rt.BoxliteError as exc:
        raise to_tool_error(exc) from None
    except OSError as exc:
        # Host-side file work (temp files, archives): say what failed, not how.
        detail = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename else ""
        logger.info("host file operation failed: %s%s", detail, where)
        raise ToolError(f"HostFileError: {detail}{where}.") from None


def _describe_error(error: ErrorDetails, fields: list[str]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where!r}: unknown argument (valid: {', '.join(fields) or 'none'})"
    if kind == "missing":
        return f"{where}: required, missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind.startswith("value_error") or not where:
        return f"{where + ': ' if where else ''}{message}"
    shown = repr(error.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{where}: {message} (got {shown})"


def argument_error(tool_name: str, model: type[BaseModel], exc: ValidationError) -> ToolError:
    """Bad arguments as one message: each bad field, what is wrong, and what to do."""
    fields = list(model.model_fields)
    lines = [_describe_error(error, fields) for error in exc.errors()[:10]]
    more = len(exc.errors()) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    bullet = "\n- ".join(lines)
    return ToolError(
        f"Invalid arguments for {tool_name}:\n- {bullet}\n"
        f"Fix them and call {tool_name} again; its input schema describes every argument."
    )
