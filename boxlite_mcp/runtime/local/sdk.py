"""The official ``boxlite`` SDK, imported only when the local runtime is used.

The SDK is an optional extra (``pip install 'boxlite-mcp[local]'``): the rest of the
package must import and run without it, so nothing imports ``boxlite`` at module
level; everything goes through ``load()``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

from ..errors import UnsupportedError

INSTALL_HINT = (
    "install the official BoxLite SDK with `pip install 'boxlite-mcp[local]'` "
    "(or `pip install boxlite`)"
)


@lru_cache(maxsize=1)
def load() -> ModuleType:
    """The ``boxlite`` module; UnsupportedError saying how to install it when absent."""
    try:
        module = importlib.import_module("boxlite")
    except ImportError as exc:
        raise UnsupportedError(
            f"the local runtime needs the boxlite SDK, which is not installed: {INSTALL_HINT}"
        ) from exc
    if not hasattr(module, "Boxlite"):
        # The pure-Python part imported but the native extension did not.
        raise UnsupportedError(
            "the boxlite SDK is installed but its native extension failed to load "
            f"(unsupported platform or a broken wheel); reinstall it: {INSTALL_HINT}"
        )
    return module


def available() -> bool:
    """Whether the SDK and its native extension import."""
    try:
        load()
    except UnsupportedError:
        return False
    return True


def version() -> str | None:
    """The installed SDK's version, or None."""
    try:
        return str(load().__version__)
    except UnsupportedError:
        return None
