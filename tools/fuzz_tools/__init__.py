"""Tool-call fuzz: generated calls from the served input schemas never crash the server.

``python -m tools.fuzz_tools`` runs it; the code is in ``run.py``.
"""
