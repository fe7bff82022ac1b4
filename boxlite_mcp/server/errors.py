"""Turn runtime failures into tool errors a model can act on.

Every runtime raises only ``BoxliteError`` subclasses with messages written for a
model; this module adds what to do next (from the error's class and the box state it
names, never its wording), shows the boxes involved by the names their owner knows,
and strips anything that looks like a credential. Tracebacks never
leave the server: anything that is not anticipated is left to the SDK, which hides it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..runtime import errors as rt
from ..sessions import naming

logger = logging.getLogger(__name__)

#: What to do next, in tool terms, by error class (the first match wins).
_HINTS: tuple[tuple[type[rt.BoxliteError], str], ...] = (
    (rt.UnsupportedError, "runtime_info lists what this runtime can do."),
    (rt.ImageError, "Check the image reference, or omit image for the runtime's default."),
    (
        rt.AuthError,
        "The BoxLite server refused this server's credentials; the operator must fix the "
        "server configuration. Retrying will not help.",
    ),
    (rt.BoxTimeoutError, "Retry, or give the operation more time."),
    (rt.UnavailableError, "The box runtime cannot be reached right now; retry in a moment."),
    (rt.AlreadyExistsError, "Pick another name, or use the existing one."),
)
#: What to do next when the box is in the wrong state, by the state the operation needs.
_STATE_HINTS: dict[str, str] = {
    "running": "Start it with box_start (exec_run starts a box by itself).",
    "stopped": "Stop the box with box_stop first (snapshots, clone and export need a stopped "
    "box; box_remove has force for a running one).",
}

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


def owner_text(text: str, boxes: Iterable[str] = ()) -> str:
    """A runtime's text as the owner should read it.

    ``boxes`` are the runtime names of the boxes involved (known from the request, not
    parsed out of the text); each becomes the name its owner gave it. Anything shaped
    like a credential is removed.
    """
    for runtime_name in boxes:
        shown = naming.shown_name(runtime_name)
        if shown is not None:
            text = text.replace(runtime_name, shown)
    return redact(text)


def hint_for(error: rt.BoxliteError) -> str | None:
    """What to do next, from the error's class and the box state it names."""
    if isinstance(error, rt.InvalidStateError):
        return _STATE_HINTS.get(error.required_state or "")
    return next((hint for cls, hint in _HINTS if isinstance(error, cls)), None)


def to_tool_error(error: rt.BoxliteError, boxes: Iterable[str] = ()) -> ToolError:
    """The ToolError a model sees for a runtime failure (``boxes``: see ``owner_text``)."""
    involved = [*boxes, *([error.box] if error.box else [])]
    message = owner_text(error.message, involved).strip() or error.kind
    hint = hint_for(error)
    if hint and hint not in message:
        stop = "" if message.endswith((".", "!", "?")) else "."
        message = f"{message}{stop} {hint}"
    return ToolError(f"{error.kind}: {message}")


@contextmanager
def tool_errors(boxes: Iterable[str] = ()) -> Iterator[None]:
    """Translate anticipated failures inside a tool into ``ToolError``.

    ``boxes``: the runtime names of the boxes the tool works on, read when an error
    is raised (so a list the tool fills as it resolves boxes works).
    """
    try:
        yield
    except rt.BoxliteError as exc:
        raise to_tool_error(exc, boxes) from None
    except BaseExceptionGroup as group:
        # A tool that streams progress runs its call in a task group: one anticipated
        # failure there arrives wrapped, and is the same failure.
        only = group.exceptions[0] if len(group.exceptions) == 1 else None
        if isinstance(only, rt.BoxliteError):
            raise to_tool_error(only, boxes) from None
        raise
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
