"""Isolation probe: one owner attacks another's boxes, executions, files and snapshots.

``python -m tools.isolation_probe`` runs it; the command line is
``run.py``; ``isolation.py`` is the probe (also run by ``tests/soak``).
"""
