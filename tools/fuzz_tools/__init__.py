"""Tool-call fuzz: generated calls from the served input schemas never crash the server.

``python -m tools.fuzz_tools`` runs it; the command line is
``run.py``; ``fuzz.py`` is the fuzz (also run by ``tests/soak``), ``schemagen.py`` the
hypothesis strategies built from the served input schemas.
"""
