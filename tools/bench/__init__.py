"""boxlite-mcp benchmarks: one command, one Markdown table, every figure from one run.

``python -m tools.bench`` runs it; the code is in ``run.py``.
"""
