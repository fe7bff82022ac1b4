"""Stateful Python sessions in boxes (``python_run``, ``python_reset``).

``PythonSessions`` is the engine a tool calls; ``kernel.py`` is the program that runs
inside the box, ``interpreter.py`` drives one kernel, ``protocol.py`` frames their
conversation, ``models.py`` holds the results a tool returns.
"""

from .interpreter import NoPythonError, OutputCallback
from .manager import DEFAULT_SESSION, PythonSessions
from .models import PythonError, PythonImage, PythonLimits, PythonResetResult, PythonRunResult

__all__ = [
    "DEFAULT_SESSION",
    "NoPythonError",
    "OutputCallback",
    "PythonError",
    "PythonImage",
    "PythonLimits",
    "PythonResetResult",
    "PythonRunResult",
    "PythonSessions",
]
