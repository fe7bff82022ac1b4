"""The MCP surface: tools, resources and prompts over the session services.

``build_server`` is this layer's entry point; ``app`` calls it and hands the result
to a ``transport``. The server reaches boxes only through ``sessions`` and the
runtime contract, never a runtime implementation.
"""

from .build import build_server

__all__ = ["build_server"]
