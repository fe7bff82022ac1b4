"""Shared helpers for the proof commands: ``leak_soak``, ``isolation_probe``, ``fuzz_tools``.

- ``host``: what a runtime home left on this host (box records, processes, mounts,
  cgroups), looked at from outside the server;
- ``server``: ``python -m boxlite_mcp`` over streamable HTTP as a child process;
- ``calls``: calling tools and judging answers (crash, traceback, secret);
- ``table``: Markdown tables;
- ``worker``: vanishing MCP clients in their own process (``python -m tools.soaklib.worker``);
- ``soak``, ``isolation``, ``fuzz``: the three commands' logic, also run by ``tests/soak``;
- ``schemagen``: hypothesis strategies from the served JSON input schemas.
"""
