"""Leak soak: MCP clients create boxes and vanish; after the idle TTL no box is left.

``python -m tools.leak_soak`` runs it; the code is in ``run.py``.
"""
