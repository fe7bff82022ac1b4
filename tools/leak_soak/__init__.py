"""Leak soak: MCP clients create boxes and vanish; after the idle TTL no box is left.

``python -m tools.leak_soak`` runs it; the command line is
``run.py``; ``soak.py`` is the soak (also run by ``tests/soak``), ``worker.py`` the vanishing
clients' process (``python -m tools.leak_soak.worker``).
"""
