"""Fault soak: execs through a connection-cutting proxy lose no output and never hang.

``python -m tools.fault_soak`` runs it; the code is in ``run.py``.
"""
