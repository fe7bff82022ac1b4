"""Helpers every runtime implementation may use: archives, output pipes, input checks.

They depend only on the runtime contract (``base``, ``types``, ``errors``), so a
runtime that imports them still imports nothing of another runtime.
"""
