"""boxlite-mcp benchmarks: one command, one Markdown table, every figure from one run.

``python -m tools.bench`` runs it (``run.py``); one module per kind of measurement:

- ``stats``: medians, percentiles, formatting; ``table``: the rows and the table;
- ``runtime``: direct runtime calls and plain host subprocesses (also a command:
  ``python -m tools.bench.runtime``, bwrap against host subprocesses);
- ``rest_worker``: our REST client and the official SDK's, side by side (its own process);
- ``mcp``: a real ``python -m boxlite_mcp`` over stdio with the SDK's ``Client``;
- ``network``: a box's downloads and ``box_expose`` against the host;
- ``rest_scale``, ``python_session``: commands of their own (``python -m tools.bench.<name>``).
"""
