"""What a Python session call returns, and the limits it runs under.

``PythonRunResult`` is built to be a tool's structured result as it is: every field is
JSON, and image bytes stay out of the schema and the dump (a tool sends them as image
content, not as base64 text inside the structured fields).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

#: A session name: short, printable, safe in messages and resource URIs.
SESSION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

ImageMime = Literal["image/png", "image/jpeg", "image/svg+xml"]


class PythonLimits(BaseModel):
    """Operator-tunable bounds of the Python sessions (sizes in bytes unless said)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Output kept per call, both streams together (head and tail of each stream).
    output_cap_bytes: int = Field(default=16 * 1024, ge=256)
    #: Characters of the last expression's repr, and of an error's message/traceback.
    result_cap_chars: int = Field(default=8 * 1024, ge=64)
    traceback_cap_chars: int = Field(default=8 * 1024, ge=256)
    max_images: int = Field(default=8, ge=0)
    max_image_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Largest cell source accepted.
    max_code_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_sessions_per_box: int = Field(default=4, ge=1)
    #: Default and ceiling of a cell's run time before it is interrupted.
    default_timeout_seconds: float = Field(default=50.0, gt=0)
    max_timeout_seconds: float = Field(default=600.0, gt=0)
    #: How long an interrupted cell has to stop before the interpreter is killed.
    interrupt_grace_seconds: float = Field(default=3.0, gt=0)
    #: How long the interpreter may take to start and say hello.
    start_timeout_seconds: float = Field(default=30.0, gt=0)


class PythonError(BaseModel):
    """An exception raised by the cell (a normal outcome), or why the session ended.

    ``type`` is the exception's qualified class name; ``SessionLost`` when the
    interpreter itself ended or was killed (its state is gone).
    """

    type: str
    message: str
    traceback: str = ""


class PythonImage(BaseModel):
    """A picture the cell produced.

    The bytes are a private attribute, outside the schema and every dump: a tool sends
    them as image content, and its structured result (validated against the schema)
    carries only what they are.
    """

    mime_type: ImageMime
    size_bytes: int
    _data: bytes = PrivateAttr(default=b"")

    @classmethod
    def of(cls, mime_type: ImageMime, data: bytes) -> PythonImage:
        image = cls(mime_type=mime_type, size_bytes=len(data))
        image._data = data
        return image

    @property
    def data(self) -> bytes:
        return self._data


class PythonRunResult(BaseModel):
    """The outcome of one cell."""

    box: str
    session: str
    #: 1 for the first cell of an interpreter, counting up; restarts at 1 after a reset.
    execution_count: int
    #: True when this call started a new interpreter (no earlier state is in it).
    new_session: bool
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    #: repr of the cell's last expression when it is not None (capped).
    result: str | None = None
    error: PythonError | None = None
    images: list[PythonImage] = Field(default_factory=list)
    #: The cell ran past its time limit and was interrupted.
    timed_out: bool = False
    #: The interpreter is gone (killed, crashed, or the box stopped): its state is lost.
    session_lost: bool = False
    duration_ms: int
    python_version: str | None = None
    #: Plain sentences for the model: what happened beyond the fields, what to do.
    notes: list[str] = Field(default_factory=list)


class PythonResetResult(BaseModel):
    """``python_reset``: the session ended; a later ``python_run`` starts afresh."""

    box: str
    session: str
    #: False when the interpreter had already ended (nothing was running).
    was_running: bool
    remaining_sessions: list[str]
