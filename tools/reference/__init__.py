"""Generate the README's tools/resources/prompts reference from the server itself.

``python -m tools.reference`` runs it; the code is in ``run.py``.
"""
