"""One runtime contract (``base``), three implementations (``bwrap``, ``rest``, ``local``)."""

from .base import Box, Execution, Runtime
from .errors import BoxliteError
from .types import BoxInfo, BoxOptions, ExecRequest, ExecResult, OutputChunk

__all__ = [
    "Box",
    "BoxInfo",
    "BoxOptions",
    "BoxliteError",
    "ExecRequest",
    "ExecResult",
    "Execution",
    "OutputChunk",
    "Runtime",
]
