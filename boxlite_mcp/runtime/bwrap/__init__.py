"""The ``bwrap`` runtime: boxes as bubblewrap sandboxes (weaker than a VM, and says so)."""

from .runtime import BwrapRuntime

__all__ = ["BwrapRuntime"]
