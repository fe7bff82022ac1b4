"""Measurement helpers for ``python -m tools.bench``: one module per kind of measurement.

- ``stats``: medians, percentiles, formatting;
- ``table``: the rows and the Markdown table;
- ``machine``: the machine and software a run happened on;
- ``procs``: subprocesses (the REST test server), RSS, process trees;
- ``runtime``: direct bwrap runtime calls and plain host subprocesses;
- ``rest_worker``: our REST client and the official SDK's, side by side (its own process);
- ``mcp``: a real ``python -m boxlite_mcp`` over stdio with the SDK's ``Client``.
"""
