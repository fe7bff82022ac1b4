"""Isolation probe: one owner attacks another's boxes, executions, files and snapshots.

``python -m tools.isolation_probe`` runs it; the code is in ``run.py``.
"""
