"""The ``local`` runtime: BoxLite micro-VMs through the official ``boxlite`` SDK.

Importing this package does not import the SDK (an optional extra); opening a
runtime does, and says how to install it when it is missing.
"""

from .runtime import LocalRuntime

__all__ = ["LocalRuntime"]
