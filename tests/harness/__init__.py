"""Test harness: runtime factories, servers and clients that tests run against.

``runtimes()`` gathers ``FACTORIES`` from every module in this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from boxlite_mcp.runtime.base import Runtime

RuntimeFactory = Callable[[Path], AbstractAsyncContextManager[Runtime]]


def runtimes() -> dict[str, RuntimeFactory]:
    found: dict[str, RuntimeFactory] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found.update(getattr(module, "FACTORIES", {}))
    return found
