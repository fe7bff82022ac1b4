"""The raw system-call entry point and a whole-buffer write, for the few calls the
standard library has no wrapper for (``openat2``, the new mount API) and the file
writers that build a box's layers. One ``ctypes`` handle on libc serves them all.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
#: ``syscall(2)``: numbers and arguments as ``ctypes`` values; -1 with ``errno`` set.
syscall = _libc.syscall
syscall.restype = ctypes.c_long


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
