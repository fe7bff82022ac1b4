"""Hostile fuzz: the REST runtime against a malicious BoxLite server, every behaviour.

``python -m tools.hostile_fuzz`` runs it; the code is in ``run.py``.
"""
